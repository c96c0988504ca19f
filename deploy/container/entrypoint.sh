#!/bin/sh
# tp-entrypoint SERVICE [ARGS...]: runs one Touchpoint service in the
# container, as PID 1's replacement (exec: signals reach it directly).
# Refuses anything but a service's name, so a typo is a clear error.
set -eu
svc=${1:-}
case $svc in
  intake|scoring|scheduler|notifier|ticketing) shift; exec "/usr/local/bin/tp-$svc" "$@" ;;
  # Touchpoint's Redis: deploy/redis.conf (AOF on), data in /data, the ACL
  # file of deploy/redis-acl.sh mounted at /etc/touchpoint/redis-acl
  redis) shift
    exec redis-server /usr/local/share/touchpoint/redis.conf --port 6379 --bind 0.0.0.0 \
      --protected-mode no --dir /data --aclfile /etc/touchpoint/redis-acl/users.acl "$@" ;;
  *) echo "tp-entrypoint: unknown service '$svc' (intake, scoring, scheduler, notifier, ticketing, redis)" >&2
     exit 64 ;;
esac
