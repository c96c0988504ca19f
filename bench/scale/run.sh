#!/usr/bin/env bash
# bench/scale/run.sh: scale-out of the scoring path on this machine: the
# same events pushed at scoring's endpoint with 1, 2 and 4 tp-scoring
# instances (one shipped configuration, only the instance name differs),
# events/s each, beside Redis's CPU (INFO cpu), the instances' CPU and the
# machine's cores, then one sentence saying where the ceiling is (Redis or
# the CPU). Everything on 127.0.0.1 in a temp dir; about a minute.
#
#   bench/scale/run.sh
#   EVENTS=20000 COUNTS=1,2 bench/scale/run.sh
#
# Knobs (environment): EVENTS (50000 per run), COUNTS (1,2,4), MIX, GAP,
# POOL_MIN, LAG (as bench/scoring), PHASE_CAP_S (90), TP_BENCH_RESULT (also
# write the figures as JSON there, for bench/report), TP_BUILD_DIR (build/).
# Needs: a configured build, redis-server, python3, ss (iproute2).
set -euo pipefail

command -v redis-server >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq redis-server; }

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${TP_BUILD_DIR:-$ROOT/build}
export TP_BUILD_DIR=$BUILD

TMP=$(mktemp -d /tmp/tp-bench-scale.XXXXXX)
HELPER_PID=
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$HELPER_PID" ] && kill -0 "$HELPER_PID" 2>/dev/null; then
        kill -TERM "$HELPER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$HELPER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$HELPER_PID" 2>/dev/null || true
    fi
    # whatever the helper started and did not stop (each line: pid and its
    # start time; a pid reused since is left alone)
    if [ -f "$TMP/pids" ]; then
        while read -r pid start; do
            now=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20) || true
            [ -n "$now" ] && [ "$now" = "$start" ] && kill -KILL "$pid" 2>/dev/null || true
        done <"$TMP/pids"
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -f "$BUILD/Makefile" ] ||
    { echo "no build in $BUILD: configure it first (make build)" >&2; exit 1; }
make -s -C "$BUILD" tp-scoring tp-scoring-feed >&2

export TP_BENCH_DIR=$TMP TP_FEED=$BUILD/bench/tp-scoring-feed
python3 "$HERE/scale_bench.py" &
HELPER_PID=$!
wait "$HELPER_PID"
