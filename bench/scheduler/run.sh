#!/usr/bin/env bash
# bench/scheduler/run.sh: Touchpoint's reminder scheduler next to BullMQ (the
# peer, installed from npm into the temp dir) against the same redis-server:
# schedule rate, fire rate and lateness with every reminder due at one
# instant, lateness at a sustainable due rate, and bytes per pending
# reminder with the breakdown by key shape; a table with the targets (5x
# BullMQ's rates, p99 lateness < 10 ms, < 200 B per pending reminder) and a
# verdict. Everything on 127.0.0.1 in a temp dir; about three minutes.
#
#   bench/scheduler/run.sh
#   N=50000 MEM_MAX=200000 bench/scheduler/run.sh       # quicker
#   SCHED_OPTS="poll_batch=20000" bench/scheduler/run.sh # scheduler settings
#   PERF=1 SYSTEMS=tp PHASES=burst bench/scheduler/run.sh # + perf profiles
#   PERF=1 PERF_GRAPH=1 ...                                # + call graphs (dwarf)
#
# Knobs (environment): N (100000 per burst), CAL_N (10000), BATCH (1000 per
# HTTP request / addBulk call), CONNS (4 HTTP connections; BullMQ: as many
# addBulk calls in flight, BULL_INFLIGHT), BULL_CONCURRENCY (1000), DUE_LEAD
# (3 s between the expected end of scheduling and the due time), LAT_RATE
# (5000/s) and LAT_SECONDS (4) for the paced phase, MEM_MAX (1000000) and
# MEM_BUDGET_S (60: Touchpoint's memory phase posts at 85% of its burst's
# schedule rate, as many as that does in this long), SAMPLE (300 keys per shape for MEMORY
# USAGE), SCHED_OPTS ([scheduler] overrides, key=value ...), BULLMQ_SPEC
# (bullmq, the npm spec to install), SYSTEMS (bull,tp) and PHASES
# (burst,paced,memory) to run a part only, TP_BUILD_DIR (build/).
# Needs: a configured build, redis-server, python3, node and npm (the npm
# registry reachable), cc.
set -euo pipefail

command -v redis-server >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq redis-server; }
command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "needs node and npm (BullMQ is the peer)" >&2; exit 1; }

. "$(dirname "$0")/../lib/bench.sh" scheduler

[ -f "$BUILD/Makefile" ] ||
    { echo "no build in $BUILD: configure it first (make build)" >&2; exit 1; }
# The services as the sources say now (a stale binary would be measured
# otherwise), and the load tool: from the CMake build when bench/ is part of
# it, otherwise compiled here against the build's static libraries.
if grep -q 'add_subdirectory(bench)' "$ROOT/CMakeLists.txt" &&
    grep -q 'tp-sched-load' "$HERE/../CMakeLists.txt"; then
    make -s -C "$BUILD" tp-intake tp-scheduler tp-sched-load tpctl >&2
    TOOL=$BUILD/bench/tp-sched-load
else
    make -s -C "$BUILD" tp-intake tp-scheduler tpctl >&2
    TOOL=$TMP/tp-sched-load
    # shellcheck disable=SC2046
    cc -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
        -D_GNU_SOURCE -I"$ROOT/common/include" -I"$ROOT/proto/include" \
        $(pkg-config --cflags libzmq msgpack jansson hiredis) \
        "$HERE/tp_sched_load.c" -o "$TOOL" \
        "$BUILD/common/libtp_common.a" "$BUILD/proto/libtp_proto.a" "$BUILD/libllhttp.a" \
        $(pkg-config --libs libzmq msgpack jansson libuv hiredis inih libical) -lm
fi

# BullMQ and its Redis client (an optional peer dependency since bullmq 5.x
# made the client pluggable), into the temp dir only.
mkdir -p "$TMP/node"
(cd "$TMP/node" && npm install --silent --no-audit --no-fund --no-save \
    --cache "$TMP/npm-cache" "${BULLMQ_SPEC:-bullmq}" ioredis >"$TMP/npm.log" 2>&1) ||
    { cat "$TMP/npm.log" >&2; echo "npm install bullmq failed" >&2; exit 1; }
TP_BULLMQ_VERSION=$(node -p "require('$TMP/node/node_modules/bullmq/package.json').version")

export TP_BENCH_DIR=$TMP TP_SCHED_LOAD=$TOOL TP_NODE_PATH=$TMP/node/node_modules \
    TP_BULLMQ_VERSION
bench_helper "$HERE/scheduler_bench.py"
