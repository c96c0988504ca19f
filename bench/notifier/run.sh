#!/usr/bin/env bash
# bench/notifier/run.sh: how fast the notifier sends, and what a delivery in
# flight costs.
#   1. the sending path alone (tp-notify-bench): N signed webhook deliveries
#      through the webhook channel and the transfer client (one libuv loop,
#      libcurl multi), INFLIGHT (1,000) at a time, to tp-notify-sink on
#      127.0.0.1, with 64 connections and with one per delivery in flight;
#      deliveries/s and heap bytes per delivery in flight;
#   2. end to end (notifier_bench.py): reminder.due posted to intake in
#      batches -> journal -> tp-notifier -> rendered, recorded in Redis, sent
#      -> tp-notify-sink; deliveries/s and Redis bytes per delivery.
# Everything on 127.0.0.1 in a temp dir; under a minute.
#
#   bench/notifier/run.sh            N=100000 INFLIGHT=1000 bench/notifier/run.sh
#
# Knobs: N (50000 for 1., E2E_N 20000 for 2.), INFLIGHT (1000), TP_BUILD_DIR.
# Needs: a configured build (cmake --build build), redis-server, python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${TP_BUILD_DIR:-$ROOT/build}
export TP_BUILD_DIR=$BUILD TP_SOURCE_DIR=$ROOT
N=${N:-50000}
E2E_N=${E2E_N:-20000}
INFLIGHT=${INFLIGHT:-1000}

cmake --build "$BUILD" -j2 --target tp-notify-sink tp-notify-bench tp-intake tp-notifier tpctl >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BUILD/bench/tp-notify-sink" "$PORT" >/dev/null &
SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/count" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/hook"

echo "== 1. sending path alone: $N deliveries, $INFLIGHT in flight"
"$BUILD/bench/tp-notify-bench" "$URL" "$N" "$INFLIGHT" 64
"$BUILD/bench/tp-notify-bench" "$URL" "$N" "$INFLIGHT" "$INFLIGHT"
echo "== 2. end to end: $E2E_N reminder.due through intake and tp-notifier"
SINK_URL=$URL N=$E2E_N python3 "$HERE/notifier_bench.py"
