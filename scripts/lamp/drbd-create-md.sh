#!/bin/sh
# Creates DRBD metadata on $2 for resource $1, refusing a disk that holds any signature.
sig=$(wipefs -n -O TYPE --noheadings "$2") || exit 1
if [ -n "$sig" ]; then echo "refusing to create DRBD metadata on $2: it holds data ($sig); wipe it yourself if it is really unused" >&2; exit 1; fi
drbdadm create-md --force "$1"
