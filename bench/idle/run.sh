#!/usr/bin/env bash
# bench/idle/run.sh: each service's start time and idle memory, beside
# redis-server's in the same run (the peer: a small C server of the same
# family). Start: from exec to READY=1 on NOTIFY_SOCKET (sd_notify: intake
# listening with Redis, a consuming service consuming), RUNS times each;
# idle: VmRSS after IDLE_S seconds with nothing to do. Targets: under
# 100 ms to start, under 10 MB idle. Everything on 127.0.0.1 in a temp dir;
# about half a minute.
#
#   bench/idle/run.sh
#   RUNS=10 IDLE_S=5 bench/idle/run.sh
#
# Knobs (environment): RUNS (5), IDLE_S (3), TP_BENCH_RESULT (also write
# the figures as JSON there, for bench/report), TP_BUILD_DIR (build/).
# Needs: a configured build, redis-server, python3.
set -euo pipefail

command -v redis-server >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq redis-server; }

. "$(dirname "$0")/../lib/bench.sh" idle

bench_build tp-intake tp-scoring tp-scheduler tp-notifier tp-ticketing tpctl

export TP_BENCH_DIR=$TMP
bench_helper "$HERE/idle_bench.py"
