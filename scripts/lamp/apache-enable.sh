#!/bin/sh
# Enables the LAMP site instead of Debian's default one; a running Apache reloads gracefully.
a2dissite -q 000-default >/dev/null; a2ensite -q cloudctl-lamp || exit 1
if service apache2 status >/dev/null 2>&1; then service apache2 reload; fi
