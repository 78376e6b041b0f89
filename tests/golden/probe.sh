main() {
set -u
sha() { [ -f "$1" ] && sha256sum < "$1" | cut -c1-64; }
h=$(sha '/etc/a b'); printf '@cloudctl probe 0 %s' "${h:--}"
if [ -n "$h" ] && [ -s '/etc/a b' ]; then printf ' '; base64 -w0 < '/etc/a b'; else printf ' -'; fi
echo
h=$(sha /etc/c); printf '@cloudctl probe 1 %s' "${h:--}"
if [ -n "$h" ] && [ -s /etc/c ]; then printf ' '; base64 -w0 < /etc/c; else printf ' -'; fi
echo
}
main </dev/null
