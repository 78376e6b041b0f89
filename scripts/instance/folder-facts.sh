#!/bin/sh
# Read-only facts about a guest's folder before `cloudctl instance remove` deletes it.
#
#   folder-facts.sh DIR MARK
#       Prints `not-a-folder` if DIR is a symlink or not a directory; otherwise, if it exists,
#       `exists`, `mark FIRST-LINE` of the creation mark DIR/MARK (a regular file, not a symlink)
#       and one `entry NAME` per entry of DIR.
d=$1 m=$2
if [ -L "$d" ] || { [ -e "$d" ] && ! [ -d "$d" ]; }; then echo not-a-folder
elif [ -d "$d" ]; then
  echo exists
  [ -f "$d/$m" ] && [ ! -L "$d/$m" ] && echo "mark $(head -c 64 "$d/$m" | head -n 1)"
  # One name a line is all the caller compares (against the names cloudctl itself creates).
  # shellcheck disable=SC2012
  ls -A1 "$d" | sed 's/^/entry /'
fi
exit 0
