#!/usr/bin/env bash
# Stops what deploy/run-local.sh started (services first, Redis last).
top=$(cd "$(dirname "$0")/.." && pwd)
run=$top/var/run
quiet=${1:-}
for name in intake scoring scheduler notifier ticketing receiver; do
  pidfile=$run/$name.pid
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    [ "$quiet" = --quiet ] || echo "stopped $name ($pid)"
  fi
  rm -f "$pidfile"
done
if [ -f "$run/redis.pid" ]; then
  pid=$(cat "$run/redis.pid")
  kill "$pid" 2>/dev/null && [ "$quiet" != --quiet ] && echo "stopped redis ($pid)"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$run/redis.pid"
fi
exit 0
