#!/bin/bash
# usage: hostsjail.sh HOSTS_FILE RESOLV_CONF CMD...
#
# Runs CMD in a private mount namespace where /etc/hosts is HOSTS_FILE and
# /etc/resolv.conf is RESOLV_CONF (for the lab: "nameserver 127.0.0.1"), so
# the C library's resolver finds the lab's names and sends any DNS query to
# loopback only. The machine's own files are untouched; daemons started by CMD
# keep the namespace (and the view) for as long as they live.
#
# Used for ejabberd: p1_xmpp resolves A records with inet_res and, when that
# fails, with net:getaddrinfo (glibc), which reads /etc/hosts and
# /etc/resolv.conf whatever inetrc says. Needs root (CAP_SYS_ADMIN).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 HOSTS_FILE RESOLV_CONF CMD..." >&2; exit 2; }
hosts=$1 resolv=$2
shift 2
exec unshare --mount --propagation private sh -c \
	'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"' \
	sh "$hosts" "$resolv" "$@"
