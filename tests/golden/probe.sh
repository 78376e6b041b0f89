main() {
set -u
umask 077
xargs -r -d '\n' stat -L -c '%F/%n' -- <<'CLOUDCTL_EOF' 2>/dev/null | sed -n 's|^regular \(empty \)\{0,1\}file/||p' | xargs -r -d '\n' sha256sum -- 2>/dev/null | sed 's/^/@cloudctl sha /'
/etc/a b
/etc/c
/etc/back\slash
CLOUDCTL_EOF
xargs -r -d '\n' stat -c '@cloudctl meta %a %U:%G %n' -- <<'CLOUDCTL_EOF' 2>/dev/null
/etc/a b
/etc/c
/etc/back\slash
CLOUDCTL_EOF
echo '@cloudctl probed'
}
main </dev/null
