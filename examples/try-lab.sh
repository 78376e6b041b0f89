#!/usr/bin/env bash
# Try cloudctl for real on one Debian 12 machine, as root: install what it needs, build it, start a
# local lab of 3 real hosts (network namespaces with their own sshd), and run a job on all of them.
# Remove the lab afterwards with: target/release/cloudctl lab down
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
cargo build --release --locked
cloudctl=target/release/cloudctl
export CLOUDCTL_INVENTORY="$PWD/lab.toml"
"$cloudctl" lab status >/dev/null 2>&1 || "$cloudctl" lab up --hosts 3
"$cloudctl" host list
"$cloudctl" run -- 'echo "$(hostname): $(uname -sr), up $(cut -d" " -f1 /proc/uptime)s"'
echo
echo "The lab is up; its inventory is $CLOUDCTL_INVENTORY. Next:"
echo "  export CLOUDCTL_INVENTORY=$CLOUDCTL_INVENTORY"
echo "  $cloudctl run --on hnode -- ip -br addr"
echo "  $cloudctl lab down"
