#!/usr/bin/env bash
# bench/ingest/run.sh: end-to-end ingest throughput of Touchpoint (HTTP batches
# and ZeroMQ ingress, measured until scoring has applied every event), single-
# event HTTP latency at a fixed rate, and the Redis ceiling of the same work
# (redis-benchmark replaying the services' own scripts), side by side.
#
#   bench/ingest/run.sh            # about a minute, everything on 127.0.0.1
#   PERF=1 bench/ingest/run.sh     # also a perf profile of the HTTP phase
#
# Knobs (environment): HTTP_EVENTS (100000) ZMQ_EVENTS (60000) HTTP_CONNS (4)
# BATCH (1000) ZMQ_WINDOW (2000) LAT_RATE (500) LAT_SECONDS (5) LAT_CONNS (16)
# BENCH_SECONDS (1.2, per redis-benchmark run; best of 2 per test),
# SERVICE_PRELOAD (LD_PRELOAD for the services only, e.g. a jemalloc .so),
# TP_BUILD_DIR (build/).
# Needs: a build of the services, redis-server, redis-benchmark, python3, cc.
set -euo pipefail

# The bench's own dependencies (redis-benchmark comes with redis-tools).
command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq redis-tools redis-server; }

. "$(dirname "$0")/../lib/bench.sh" ingest

for svc in intake scoring; do
    [ -x "$BUILD/services/$svc/tp-$svc" ] ||
        { echo "no $BUILD/services/$svc/tp-$svc: build first (cd build && make)" >&2; exit 1; }
done

# The load generator: from the CMake build when bench/ is part of it,
# otherwise compiled here against the build's static libraries.
if grep -q 'add_subdirectory(bench)' "$ROOT/CMakeLists.txt"; then
    make -s -C "$BUILD" tp-loadgen tpctl >&2
    LOADGEN=$BUILD/bench/tp-loadgen
else
    LOADGEN=$TMP/tp-loadgen
    # shellcheck disable=SC2046
    cc -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
        -D_GNU_SOURCE -I"$ROOT/common/include" -I"$ROOT/proto/include" \
        $(pkg-config --cflags libzmq msgpack jansson) \
        "$HERE/tp_loadgen.c" -o "$LOADGEN" \
        "$BUILD/common/libtp_common.a" "$BUILD/proto/libtp_proto.a" "$BUILD/libllhttp.a" \
        $(pkg-config --libs libzmq msgpack jansson libuv hiredis inih) -lm
fi

export TP_BENCH_DIR=$TMP TP_LOADGEN=$LOADGEN
bench_helper "$HERE/ingest_bench.py"
