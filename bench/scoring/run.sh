#!/usr/bin/env bash
# bench/scoring/run.sh: throughput of tp-scoring ALONE against Redis (no
# intake), by its two inputs, next to the Redis ceiling of the same work:
#   journal walk: N events put in the journal before tp-scoring starts, applied
#                 by its reconcile walk;
#   bus:          N events pushed at its ZeroMQ PULL, as intake's router does;
#   ceiling:      redis-benchmark replaying the read and apply scripts scoring
#                 sent for each event type (captured with MONITOR), pipelined,
#                 against the same Redis, weighted by the run's event mix.
# Everything on 127.0.0.1 in a temp dir; about a minute and a half.
#
#   bench/scoring/run.sh
#   EVENTS=50000 MIX=lead=50,contact=50,opportunity=0,survey=0 bench/scoring/run.sh
#   PERF=1 bench/scoring/run.sh     # also perf profiles of both phases
#
# Knobs (environment): EVENTS (100000 per phase), MIX
# (lead=30,contact=35,opportunity=20,survey=15), GAP (2000), LAG (50ms),
# BENCH_SECONDS (1.2 per redis-benchmark run, best of 2), PHASE_CAP_S (60),
# SERVICE_PRELOAD (LD_PRELOAD for tp-scoring only), TP_BUILD_DIR (build/).
# Needs: a configured build, redis-server, redis-benchmark, python3, cc.
set -euo pipefail

command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq redis-tools redis-server; }

. "$(dirname "$0")/../lib/bench.sh" scoring

[ -f "$BUILD/Makefile" ] ||
    { echo "no build in $BUILD: configure it first (make build)" >&2; exit 1; }
# tp-scoring as the sources say now (a stale binary would be measured
# otherwise), and the feed: from the CMake build when bench/ is part of it,
# otherwise compiled here against the build's static libraries.
if grep -q 'add_subdirectory(bench)' "$ROOT/CMakeLists.txt"; then
    make -s -C "$BUILD" tp-scoring tp-scoring-feed tpctl >&2
    FEED=$BUILD/bench/tp-scoring-feed
else
    make -s -C "$BUILD" tp-scoring tpctl >&2
    FEED=$TMP/tp-scoring-feed
    # shellcheck disable=SC2046
    cc -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
        -D_GNU_SOURCE -I"$ROOT/common/include" -I"$ROOT/proto/include" \
        $(pkg-config --cflags libzmq msgpack jansson hiredis) \
        "$HERE/tp_scoring_feed.c" -o "$FEED" \
        "$BUILD/common/libtp_common.a" "$BUILD/proto/libtp_proto.a" "$BUILD/libllhttp.a" \
        $(pkg-config --libs libzmq msgpack jansson libuv hiredis inih) -lm
fi

export TP_BENCH_DIR=$TMP TP_FEED=$FEED
bench_helper "$HERE/scoring_bench.py"
