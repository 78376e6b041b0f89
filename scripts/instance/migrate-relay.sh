#!/bin/sh
# Carries an outgoing kvm migration from the source's QEMU into ssh.
#
#   migrate-relay.sh start SOCKET PIDFILE UID:GID SSH_ARGV...
#       Listens on SOCKET (a Unix socket only UID may connect to, in a directory only root and
#       GID may enter) and pipes what QEMU writes there into SSH_ARGV. Returns once it listens.
#   migrate-relay.sh stop SOCKET PIDFILE
#       Ends a relay still running (a migration that never started or was cancelled).
#
# Why a relay: QEMU runs as an unprivileged uid with no passwd entry (-runas), so it can neither
# start ssh (ssh refuses a uid it cannot look up) nor read the one-time key, which stays root's.
# The relay runs as root and ends by itself when QEMU closes the stream.
set -u
mode=$1 sock=$2 pidfile=$3

# The relay's process group, if PIDFILE names one still serving SOCKET (a stale pid file may
# name an unrelated process by now).
relay_pid() {
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$sock"
}

case $mode in
start)
    owner=$4
    shift 4
    if relay_pid; then kill -- "-$pid" 2>/dev/null; fi
    dir=${sock%/*}
    mkdir -p "$dir" && chown "0:${owner#*:}" "$dir" && chmod 0710 "$dir" || exit 1
    rm -f "$sock"
    # setsid: a session of its own, so that stop ends socat and ssh together. The inner program
    # gets its values as arguments, so it is quoted against expansion here on purpose.
    # shellcheck disable=SC2016
    setsid sh -c 'sock=$1 uid=$2; shift 2; socat -u "UNIX-LISTEN:$sock,user=$uid,mode=600" STDOUT | "$@"' \
        migrate-relay "$sock" "${owner%%:*}" "$@" </dev/null >/dev/null 2>&1 &
    echo "$!" >"$pidfile"
    i=0
    while [ ! -S "$sock" ] && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -S "$sock" ] || {
        echo "the migration relay did not start listening on $sock" >&2
        exit 1
    }
    ;;
stop)
    if relay_pid; then kill -- "-$pid" 2>/dev/null; fi
    rm -f "$pidfile" "$sock"
    ;;
*)
    echo "migrate-relay.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
