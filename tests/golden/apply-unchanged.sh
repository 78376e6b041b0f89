main() {
set -u
um=$(umask); umask 077
safe_dir() { mkdir -m 700 "$1" 2>/dev/null; if [ -L "$1" ] || [ ! -d "$1" ] || [ "$(stat -c '%u %a' "$1")" != "$(id -u) 700" ]; then echo "@cloudctl unsafe $1"; exit 77; fi; }
sd() { [ -n "${sdok:-}" ] || { safe_dir /var/lib/cloudctl && mkdir -p /var/lib/cloudctl/backups /var/lib/cloudctl/pending && sdok=1; }; }
rec() { o=-; e=-; [ -s "$T/o" ] && o=$(base64 -w0 < "$T/o"); [ -s "$T/e" ] && e=$(base64 -w0 < "$T/e"); printf '@cloudctl %s %s %s %s %s\n' "$1" "$2" "${3:--}" "$o" "$e"; : > "$T/o"; : > "$T/e"; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cloudctl.XXXXXX") || exit 70
: > "$T/o"; : > "$T/e"
trap 'rm -rf "$T"' EXIT
safe_dir /run/cloudctl; if [ -L /run/cloudctl/lock ]; then echo '@cloudctl unsafe /run/cloudctl/lock'; exit 77; fi
exec 9>>/run/cloudctl/lock && flock -w 600 9 || { echo '@cloudctl lock timeout'; exit 75; }
sha256sum -c --quiet --status <<'CLOUDCTL_EOF' 2>/dev/null || { echo '@cloudctl stale'; exit 0; }
2059ac0679e5e0d48facb02b42ddeca56b50d7830ab917a238c3a80cc82aa3ed  /etc/demo/demo.conf
CLOUDCTL_EOF
[ "$(xargs -r -d '\n' stat -c '%a %U:%G' -- <<'CLOUDCTL_EOF' 2>/dev/null
/etc/demo/demo.conf
CLOUDCTL_EOF
)" = '644 root:root' ] || { echo '@cloudctl stale'; exit 0; }
c0=0
if [ -d /etc/demo ] && [ "$(stat -c %a /etc/demo)" = 755 ]; then rec 0 ok
elif (umask "$um"; mkdir -p /etc/demo) 2>"$T/e" && chmod 755 /etc/demo 2>"$T/e"; then c0=1; rec 0 changed
else rec 0 failed 1; exit 1; fi
c1=0 b1=0
rec 1 ok
c2=0
if { [ $c1 = 1 ] || [ -e /var/lib/cloudctl/pending/7f336d240ae2d55e45337996047cf66d ]; }; then (umask "$um"; exec service demo restart) >"$T/o" 2>"$T/e" 9>&-; rc=$?
if [ $rc -eq 0 ]; then rm -f /var/lib/cloudctl/pending/7f336d240ae2d55e45337996047cf66d; c2=1; rec 2 changed 0
else r=0
  case $b1 in
    1) r=1; cp -p /var/lib/cloudctl/backups/etc/demo/demo.conf /etc/demo/.demo.conf.cloudctl-new 2>>"$T/e" && mv -f /etc/demo/.demo.conf.cloudctl-new /etc/demo/demo.conf 2>>"$T/e" && echo 'cloudctl: restored the previous /etc/demo/demo.conf' >>"$T/e" || echo 'cloudctl: could not restore the previous /etc/demo/demo.conf' >>"$T/e";;
    2) r=1; rm -f /etc/demo/demo.conf && echo 'cloudctl: removed /etc/demo/demo.conf (there was none before)' >>"$T/e";;
  esac
  if [ $r = 1 ]; then if (umask "$um"; exec service demo restart) >/dev/null 2>&1 9>&-; then rm -f /var/lib/cloudctl/pending/7f336d240ae2d55e45337996047cf66d; echo 'cloudctl: ran `service demo restart` again with the previous files: it succeeded, the previous configuration is running' >>"$T/e"; else echo 'cloudctl: ran `service demo restart` again with the previous files: it failed too' >>"$T/e"; fi; fi
  rec 2 failed $rc; exit 1; fi
else rec 2 skipped; fi
exit 0
}
main </dev/null
