#!/bin/sh
# tp-entrypoint SERVICE [ARGS...]: runs one Touchpoint service in the
# container, as PID 1's replacement (exec: signals reach it directly).
# Refuses anything but a service's name, so a typo is a clear error.
set -eu
svc=${1:-}
case $svc in
  intake|scoring|scheduler|notifier|ticketing) shift; exec "/usr/local/bin/tp-$svc" "$@" ;;
  *) echo "tp-entrypoint: unknown service '$svc' (intake, scoring, scheduler, notifier, ticketing)" >&2
     exit 64 ;;
esac
