#!/bin/sh
# The one QMP helper, put in front of every program that talks to a guest's monitor.
#
#   qmp SECONDS SOCKET COMMAND_JSON...
#       Sends the capabilities handshake (QMP refuses anything before it), then each command;
#       prints QEMU's answers. socat gives up after SECONDS without an answer; fails when the
#       monitor cannot be reached.
qmp() {
  _qmp_t=$1 _qmp_sock=$2
  shift 2
  { printf '%s\n' '{"execute":"qmp_capabilities"}'; printf '%s\n' "$@"; } | socat -t "$_qmp_t" - "UNIX-CONNECT:$_qmp_sock"
}
