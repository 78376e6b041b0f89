#!/bin/sh
# Reports one member disk as `disk D present|missing` and its `blkid D KEY=VALUE` lines; the
# disk path is its only argument, so nothing in it is parsed by the shell.
disk() {
  if [ -b "$1" ]; then
    echo "disk $1 present"
    blkid -p -o export "$1" 2>/dev/null | while IFS= read -r l; do echo "blkid $1 $l"; done
    blkid -p "$1" >/dev/null 2>&1; [ $? -eq 8 ] && echo "blkid $1 AMBIVALENT=1"
  else
    echo "disk $1 missing"
  fi
}
