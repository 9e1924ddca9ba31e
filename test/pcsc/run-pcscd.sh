#!/bin/sh
# run-pcscd.sh SOCKDIR CONF [pcscd options...]
#
# Runs pcsc-lite's pcscd in the foreground for a test, with vpcd readers
# from CONF (see reader.conf.in), in a private mount namespace whose
# /run/pcscd is the bind-mounted SOCKDIR. pcscd has its socket path
# compiled in and allows one daemon per /run/pcscd: this keeps the test's
# daemon away from a system pcscd and from other tests. Clients reach it
# with PCSCLITE_CSOCK_NAME=SOCKDIR/pcscd.comm (libpcsclite reads it).
#
# The process keeps its PID through the execs: stop it with SIGTERM to
# that PID. Needs root (mount) and util-linux's unshare.
set -eu
if [ $# -lt 2 ]; then
	echo "usage: $0 SOCKDIR CONF [pcscd options...]" >&2
	exit 2
fi
sockdir=$1
shift
exec unshare --mount --propagation private -- /bin/sh -ec '
mkdir -p /run/pcscd
mount --bind "$1" /run/pcscd
shift
exec pcscd --foreground --config "$@"
' run-pcscd "$sockdir" "$@"
