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

. "$(dirname "$0")/../lib/bench.sh" scale

bench_build tp-scoring tp-scoring-feed tpctl

export TP_BENCH_DIR=$TMP TP_FEED=$BUILD/bench/tp-scoring-feed
bench_helper "$HERE/scale_bench.py"
