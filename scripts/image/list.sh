#!/bin/sh
# Lists the images of the store (cloudctl image list). Read-only.
#
#   list.sh DIR
#       One line per regular file of DIR (not a link; dot files, such as pushes in flight, are
#       left out): `image SIZE BLOCKS BLOCK_SIZE MTIME PATH`.
dir=$1
[ -d "$dir" ] || exit 0
for f in "$dir"/*; do
  if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
  stat -c 'image %s %b %B %Y %n' "$f"
done
exit 0
