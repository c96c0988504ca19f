# bench/lib/bench.sh: what every bench/<name>/run.sh does first, sourced
# with the bench's name: `. "$(dirname "$0")/../lib/bench.sh" scale`.
# Sets HERE (the bench's folder), ROOT, BUILD (TP_BUILD_DIR, exported), TMP
# (a folder of this run, removed at exit) and HELPER_PID (set it to the
# Python helper's pid); at exit stops the helper and kills whatever it
# started and left (the lines "<pid> <start time>" of $TMP/pids; a pid
# reused since is left alone). bench_build and bench_helper below are the
# rest of a run.sh's usual steps. TP_BENCH_KEEP=1 keeps $TMP (the services'
# logs, Redis's files; TP_KEEP_LOGS=1 is set) for a look afterwards.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${TP_BUILD_DIR:-$ROOT/build}
export TP_BUILD_DIR=$BUILD
if [ "${TP_BENCH_KEEP:-0}" = 1 ]; then export TP_KEEP_LOGS=1; fi

TMP=$(mktemp -d "/tmp/tp-bench-$1.XXXXXX")
HELPER_PID=
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$HELPER_PID" ] && kill -0 "$HELPER_PID" 2>/dev/null; then
        kill -TERM "$HELPER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$HELPER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$HELPER_PID" 2>/dev/null || true
    fi
    if [ -f "$TMP/pids" ]; then
        while read -r pid start; do
            now=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20) || true
            [ -n "$now" ] && [ "$now" = "$start" ] && kill -KILL "$pid" 2>/dev/null || true
        done <"$TMP/pids"
    fi
    if [ "${TP_BENCH_KEEP:-0}" = 1 ]; then echo "[bench] kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Builds TARGET... in $BUILD, which must be configured (make build).
bench_build() {
    [ -f "$BUILD/Makefile" ] ||
        { echo "no build in $BUILD: configure it first (make build)" >&2; exit 1; }
    make -s -C "$BUILD" "$@" >&2
}

# Runs the bench's Python helper SCRIPT (its pid in HELPER_PID, so the exit
# trap can stop it) and returns its exit status.
bench_helper() {
    python3 "$1" &
    HELPER_PID=$!
    wait "$HELPER_PID"
}
