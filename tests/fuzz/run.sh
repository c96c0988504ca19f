#!/usr/bin/env bash
# run.sh: the short fuzz run (CI, `make fuzz`): builds the libFuzzer targets
# in build-fuzz with clang, then runs each for SECONDS (default 10) over its
# checked-in corpus, tests/fuzz/corpus/<target>/.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# The checked-in corpus is only read: what a run discovers goes to
# build-fuzz/fuzz-corpus/<target>/ (kept between runs, so local runs build on
# each other). A crash, leak, sanitizer report, broken invariant or hang
# stops that target; the input lands in build-fuzz/fuzz-artifacts/ and the
# script fails after running the rest. A file named crash-* in the
# checked-in corpus is a reproducer kept as a regression input: it fails the
# run until its bug is fixed.
#
# Environment: TP_FUZZ_BUILD (default <repo>/build-fuzz), CC (default clang).
set -euo pipefail

secs=${1:-10}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TP_FUZZ_BUILD:-$root/build-fuzz}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_event_json fuzz_event_msgpack fuzz_http fuzz_config
                                     fuzz_rrule fuzz_calendar fuzz_auth)

CC=${CC:-clang} cmake -S "$root" -B "$build" -DTP_FUZZ=ON >/dev/null
cmake --build "$build" --target fuzzers -j "$(nproc)" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
failed=()
for t in "${targets[@]}"; do
    seeds=$root/tests/fuzz/corpus/$t
    work=$build/fuzz-corpus/$t
    log=$build/fuzz-logs/$t.log
    mkdir -p "$work" "$seeds"
    dict=()
    [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
    # -timeout: one input taking 10 s is a hang; -malloc_limit_mb: one
    # allocation of 256 MB is a header believed without its bytes.
    if "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=256 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$build/fuzz-artifacts/$t-" "$work" "$seeds" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "fuzz: $t: ok, ${runs:-?} inputs in ${secs}s, $cov"
    else
        echo "fuzz: $t: FAILED (full log: $log)"
        grep -E -A40 '^==[0-9]+==(ERROR|WARNING)|runtime error|invariant broken|ALARM|Test unit written' \
            "$log" | head -80 || tail -40 "$log"
        echo "fuzz: reproduce: ASAN_OPTIONS=fast_unwind_on_malloc=0 $build/tests/fuzz/$t <input>"
        echo "fuzz: minimise:  $build/tests/fuzz/$t -minimize_crash=1 -max_total_time=60 <input>"
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}"
    exit 1
fi
