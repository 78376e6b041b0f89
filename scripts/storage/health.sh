#!/bin/sh
# Read-only: /proc/drbd and /proc/mdstat between `--- drbd`, `--- mdstat` and `--- end` marker
# lines, then `split-brain-lines N`, how often the kernel logged a DRBD split brain. Also put in
# front of the rest of a larger probe (doctor's), so it ends with a newline and no exit.
if [ -r /proc/drbd ]; then echo '--- drbd'; cat /proc/drbd; fi
if [ -r /proc/mdstat ]; then echo '--- mdstat'; cat /proc/mdstat; fi
echo '--- end'
echo "split-brain-lines $(dmesg 2>/dev/null | grep -c 'Split-Brain detected')"
