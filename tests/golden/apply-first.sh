main() {
set -u
um=$(umask); umask 077
safe_dir() { mkdir -m 700 "$1" 2>/dev/null; if [ -L "$1" ] || [ ! -d "$1" ] || [ "$(stat -c '%u %a' "$1")" != "$(id -u) 700" ]; then echo "@cloudctl unsafe $1"; exit 77; fi; }
sd() { [ -n "${sdok:-}" ] || { safe_dir /var/lib/cloudctl && mkdir -p /var/lib/cloudctl/backups /var/lib/cloudctl/pending && sdok=1; }; }
rec() { o=-; e=-; [ -s "$T/o" ] && o=$(base64 -w0 < "$T/o"); [ -s "$T/e" ] && e=$(base64 -w0 < "$T/e"); printf '@cloudctl %s %s %s %s %s\n' "$1" "$2" "${3:--}" "$o" "$e"; : > "$T/o"; : > "$T/e"; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cloudctl.XXXXXX") || exit 70
trap 'rm -rf "$T"' EXIT
: > "$T/o"; : > "$T/e"
hash_of() { H=; [ -f "$1" ] && H=$(sha256sum < "$1") && H=${H%% *}; }
safe_dir /run/cloudctl; if [ -L /run/cloudctl/lock ]; then echo '@cloudctl unsafe /run/cloudctl/lock'; exit 77; fi
exec 9>>/run/cloudctl/lock && flock -w 600 9 || { echo '@cloudctl lock timeout'; exit 75; }
sd
c0=0
if [ -d /etc/demo ] && [ "$(stat -c %a /etc/demo)" = 755 ]; then rec 0 ok
elif (umask "$um"; mkdir -p /etc/demo) 2>"$T/e" && chmod 755 /etc/demo 2>"$T/e"; then c0=1; rec 0 changed
else rec 0 failed 1; exit 1; fi
c1=0
b1=0
hash_of /etc/demo/demo.conf; if [ "$H" = 2059ac0679e5e0d48facb02b42ddeca56b50d7830ab917a238c3a80cc82aa3ed ]; then
  if [ "$(stat -c '%a %U:%G' /etc/demo/demo.conf)" = '644 root:root' ]; then rec 1 ok
  elif chmod 644 /etc/demo/demo.conf && chown root:root /etc/demo/demo.conf 2>"$T/e"; then c1=1; rec 1 changed; else rec 1 failed 1; exit 1; fi
else
  { rm -f /etc/demo/.demo.conf.cloudctl-new && base64 -d > /etc/demo/.demo.conf.cloudctl-new <<'CLOUDCTL_EOF'
b3B0aW9uID0gMQo=
CLOUDCTL_EOF
  } 2>"$T/e" && hash_of /etc/demo/.demo.conf.cloudctl-new && [ "$H" = 2059ac0679e5e0d48facb02b42ddeca56b50d7830ab917a238c3a80cc82aa3ed ] || { rm -f /etc/demo/.demo.conf.cloudctl-new; rec 1 failed 1; exit 1; }
  grep -q option /etc/demo/.demo.conf.cloudctl-new >"$T/o" 2>"$T/e" 9>&-; rc=$?
  if [ $rc -ne 0 ]; then rm -f /etc/demo/.demo.conf.cloudctl-new; rec 1 invalid $rc; exit 3; fi
  { chmod 644 /etc/demo/.demo.conf.cloudctl-new && chown root:root /etc/demo/.demo.conf.cloudctl-new && sd && : >/var/lib/cloudctl/pending/7f336d240ae2d55e45337996047cf66d; } 2>>"$T/e" || { rm -f /etc/demo/.demo.conf.cloudctl-new; rec 1 failed 1; exit 1; }
  if [ -e /etc/demo/demo.conf ]; then sd && mkdir -p /var/lib/cloudctl/backups/etc/demo && { ln -f /etc/demo/demo.conf /var/lib/cloudctl/backups/etc/demo/demo.conf 2>/dev/null || cp -p /etc/demo/demo.conf /var/lib/cloudctl/backups/etc/demo/demo.conf; } 2>>"$T/e" && b1=1 || { rm -f /etc/demo/.demo.conf.cloudctl-new; rec 1 failed 1; exit 1; }; else b1=2; fi
  mv -f /etc/demo/.demo.conf.cloudctl-new /etc/demo/demo.conf 2>"$T/e" || { rm -f /etc/demo/.demo.conf.cloudctl-new; rec 1 failed 1; exit 1; }
  c1=1; rec 1 changed
fi
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
