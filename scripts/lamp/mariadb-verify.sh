#!/bin/sh
# Reads the running server's settings back (after any restart).
v=$(mariadb -N -B -e 'SELECT @@GLOBAL.skip_external_locking, @@GLOBAL.delay_key_write, @@GLOBAL.query_cache_size, @@GLOBAL.default_storage_engine') || exit 1
want=$(printf '0\tOFF\t0\tMyISAM')
[ "$v" = "$want" ] || { echo "the running MariaDB has skip_external_locking, delay_key_write, query_cache_size, default_storage_engine = $v; want $want" >&2; exit 1; }
