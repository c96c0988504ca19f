#!/usr/bin/env bash
# deploy/systemd/install.sh [BUILD_DIR]: installs Touchpoint on this host
# under systemd, as root: the binaries (cmake --install, /usr/local/bin),
# the units, the touchpoint user, and /etc/touchpoint made from
# deploy/local (kept when it exists: this never overwrites a configuration,
# keys or passwords). Starts nothing; prints what to enable.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
etc=/etc/touchpoint
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }

cmake --install "$build" --prefix /usr/local >/dev/null
install -m 0644 "$top"/deploy/systemd/touchpoint-*.service "$top/deploy/systemd/touchpoint.target" \
  /etc/systemd/system/
install -D -m 0644 "$top/deploy/systemd/touchpoint.sysusers" /usr/lib/sysusers.d/touchpoint.conf
systemd-sysusers /usr/lib/sysusers.d/touchpoint.conf

if [ ! -e "$etc/touchpoint.ini" ]; then
  install -d -m 0750 -g touchpoint "$etc"
  # the local configuration, its paths made relative to /etc/touchpoint
  # (the units' working directory)
  sed -e 's#deploy/local/##; s#deploy/##; s#var/keys#keys#; s#var/secrets#secrets#' \
    "$top/deploy/local/touchpoint.ini" > "$etc/touchpoint.ini"
  cp -r "$top/deploy/templates" "$top/deploy/calendars" "$etc/"
  install -m 0640 -g touchpoint "$top/deploy/local/rules.ini" "$top/deploy/local/users.ini" "$etc/"
  install -m 0640 -g touchpoint "$top/deploy/local/api-keys.ini" "$etc/"
  install -m 0644 "$top/deploy/redis.conf" "$etc/redis.conf"
  chgrp -R touchpoint "$etc"
  echo "install.sh: wrote $etc from deploy/local; review it (api-keys.ini holds demo keys)"
fi
if [ ! -d "$etc/keys" ]; then
  /usr/local/bin/tpctl keygen curve --dir "$etc/keys" intake scoring scheduler notifier ticketing >/dev/null
  chgrp -R touchpoint "$etc/keys"; chmod 0750 "$etc/keys"; chmod 0640 "$etc"/keys/*.key
fi
if [ ! -e "$etc/users.acl" ]; then
  bash "$top/deploy/redis-acl.sh" tp: "$etc/secrets" > "$etc/users.acl"
  chown redis "$etc/users.acl" 2>/dev/null || true
  chmod 0600 "$etc/users.acl"
  chgrp -R touchpoint "$etc/secrets"; chmod 0750 "$etc/secrets"; chmod 0640 "$etc"/secrets/*
fi
systemctl daemon-reload 2>/dev/null || true
cat <<EOT
Installed. Enable and start, e.g.:
  systemctl enable touchpoint.target touchpoint-redis touchpoint-intake@1 \\
    touchpoint-scoring@{1..4} touchpoint-scheduler@1 touchpoint-notifier@1 touchpoint-ticketing@1
  systemctl start touchpoint.target
  journalctl -u 'touchpoint-*' -f
EOT
