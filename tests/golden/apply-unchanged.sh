main() {
set -u
rec() { o=-; e=-; [ -s "$T/o" ] && o=$(base64 -w0 < "$T/o"); [ -s "$T/e" ] && e=$(base64 -w0 < "$T/e"); printf '@cloudctl %s %s %s %s %s\n' "$1" "$2" "${3:--}" "$o" "$e"; : > "$T/o"; : > "$T/e"; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cloudctl.XXXXXX") || exit 70
: > "$T/o"; : > "$T/e"
trap 'rm -rf "$T"' EXIT
mkdir -p /run/lock && exec 9>>/run/lock/cloudctl.lock && flock -w 600 9 || { echo '@cloudctl lock timeout'; exit 75; }
sha256sum -c --quiet --status <<'CLOUDCTL_EOF' 2>/dev/null || { echo '@cloudctl stale'; exit 0; }
2059ac0679e5e0d48facb02b42ddeca56b50d7830ab917a238c3a80cc82aa3ed  /etc/demo/demo.conf
CLOUDCTL_EOF
[ "$(xargs -r -d '\n' stat -c '%a %U:%G' -- <<'CLOUDCTL_EOF' 2>/dev/null
/etc/demo/demo.conf
CLOUDCTL_EOF
)" = '644 root:root' ] || { echo '@cloudctl stale'; exit 0; }
c0=0
if [ -d /etc/demo ] && [ "$(stat -c %a /etc/demo)" = 755 ]; then rec 0 ok
elif mkdir -p /etc/demo 2>"$T/e" && chmod 755 /etc/demo 2>"$T/e"; then c0=1; rec 0 changed
else rec 0 failed 1; exit 1; fi
c1=0
rec 1 ok
c2=0
if { [ $c1 = 1 ]; }; then service demo restart >"$T/o" 2>"$T/e" 9>&-; rc=$?
if [ $rc -eq 0 ]; then c2=1; rec 2 changed 0; else rec 2 failed $rc; exit 1; fi
else rec 2 skipped; fi
exit 0
}
main </dev/null
