#!/usr/bin/env bash
# Runs Touchpoint locally: its own redis-server (AOF on) and the five
# services in the background, data and logs under var/, then demo traffic.
# `make stop` (deploy/stop-local.sh) ends what this started.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" # relative paths in the configuration start here
build=${1:-$top/build}
var=$top/var
config=${TP_CONFIG:-$top/deploy/local/touchpoint.ini}
mkdir -p "$var/redis" "$var/log" "$var/run"

# The demo shortens the follow-up clocks so reminders fire while you watch;
# TP_DEMO_FAST=0 keeps the configured (real) durations.
if [ "${TP_DEMO_FAST:-1}" = 1 ]; then
  export TP_SCHEDULER_FIRST_TOUCH_A=${TP_SCHEDULER_FIRST_TOUCH_A:-20s}
  export TP_SCHEDULER_INQUIRY_RESPONSE_URGENT=${TP_SCHEDULER_INQUIRY_RESPONSE_URGENT:-30s}
  export TP_TICKETING_FIRST_RESPONSE_URGENT=${TP_TICKETING_FIRST_RESPONSE_URGENT:-15s}
  export TP_SCHEDULER_WORKING_HOURS_ONLY=${TP_SCHEDULER_WORKING_HOURS_ONLY:-false}
  export TP_SCHEDULER_QUIET_HOURS=${TP_SCHEDULER_QUIET_HOURS-}
fi

"$top/deploy/stop-local.sh" --quiet || true

# The bus's CURVE key pairs ([bus] keys_dir), made once and kept.
"$build/tools/tpctl" keygen curve --dir "$var/keys" intake scoring scheduler notifier ticketing >/dev/null

redis_port=$(awk -F= '/^\[redis\]/{s=1;next} /^\[/{s=0} s && $1~/^port/{gsub(/[ \t;].*/,"",$2); gsub(/ /,"",$2); print $2}' "$config")
redis_port=${TP_REDIS_PORT:-${redis_port:-6390}}
# One ACL user per service, passwords under var/secrets (kept across runs).
bash "$top/deploy/redis-acl.sh" tp: "$var/secrets" >"$var/redis/users.acl"
# tpctl's API key for intake (deploy/local/api-keys.ini [tpctl], read by
# tpctl from [tpctl] api_key_file), random, made once and kept like the
# Redis passwords.
[ -s "$var/secrets/tpctl.apikey" ] ||
  (umask 077; head -c 32 /dev/urandom | sha256sum | cut -c1-64 >"$var/secrets/tpctl.apikey")
redis-server "$top/deploy/redis.conf" --port "$redis_port" --bind 127.0.0.1 --dir "$var/redis" \
  --aclfile "$var/redis/users.acl" --daemonize yes \
  --pidfile "$var/run/redis.pid" --logfile "$var/log/redis.log"
admin=(redis-cli -p "$redis_port" --user admin --pass "$(cat "$var/secrets/admin.pass")" --no-auth-warning)
for _ in $(seq 50); do "${admin[@]}" ping >/dev/null 2>&1 && break; sleep 0.1; done

# A webhook receiver for the demo (a chat tool or CRM would be here).
python3 "$top/deploy/local/demo_receiver.py" 8090 "$var/log/webhooks.log" \
  >/dev/null 2>&1 &
echo $! > "$var/run/receiver.pid"

for svc in intake scoring scheduler notifier ticketing; do
  TP_CONFIG=$config nohup "$build/services/$svc/tp-$svc" \
    >>"$var/log/$svc.log" 2>&1 &
  echo $! > "$var/run/$svc.pid"
done

port=$(awk -F= '/^\[intake\]/{s=1;next} /^\[/{s=0} s && $1~/^port/{gsub(/[ \t;].*/,"",$2); gsub(/ /,"",$2); print $2}' "$config")
port=${TP_INTAKE_PORT:-${port:-8080}}
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" | grep -q '"redis":"up"' && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || {
  echo "intake did not come up; see $var/log/intake.log" >&2; exit 1; }

"$top/deploy/local/demo-traffic.sh" "http://127.0.0.1:$port"

cat <<EOT

Touchpoint is running (redis on 127.0.0.1:$redis_port, intake on http://127.0.0.1:$port).
Where to look:
  curl -H 'Authorization: Bearer tp-local-dev-key' http://127.0.0.1:$port/v1/customers/DEMO-ACME
  curl -H 'Authorization: Bearer tp-local-dev-key' 'http://127.0.0.1:$port/v1/lookup?phone=13800138000'
  curl -H 'Authorization: Bearer tp-local-dev-key' http://127.0.0.1:$port/v1/inbox/rep-wang
  $build/tools/tpctl -c $config status   # every instance, its age, applied events, lag
  $build/tools/tpctl -c $config customer DEMO-ACME --timeline
  tail -f $var/log/webhooks.log     # reminders and SLA alarms as delivered
  tail -f $var/log/*.log            # service logs, one JSON object per line
  curl http://127.0.0.1:9701/metrics   # Prometheus text; 9700 intake .. 9704 ticketing
  curl http://127.0.0.1:9701/readyz    # 200, or 503 and why (also /healthz)
  redis-cli -p $redis_port --user admin --pass \$(cat $var/secrets/admin.pass) xlen tp:{j}:journal
The first-touch reminder for DEMO-ACME fires about 20 s after the lead and the
urgent ticket breaches its SLA after 15 s. Stop everything with: make stop
EOT
