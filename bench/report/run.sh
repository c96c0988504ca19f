#!/usr/bin/env bash
# bench/report/run.sh: every benchmark in one command, one Markdown report
# with each figure next to its ceiling and its peer (bench/report/REPORT.md
# unless told otherwise). Runs bench/ingest, bench/scoring, bench/scheduler,
# bench/notifier, bench/scale and bench/idle one after another (never at once: each
# wants the machine), each writing its headline figures as JSON
# (TP_BENCH_RESULT) beside its printed report, which the Markdown keeps too.
#
#   bench/report/run.sh                      # quick sizes, ~5 minutes
#   bench/report/run.sh --full               # each bench's own sizes, ~10 minutes
#   bench/report/run.sh --out /tmp/r.md --only scoring,scale
#
# A bench that fails is reported as failed, with the end of its log; the
# others still run. Exit status: 0 when all ran, 1 otherwise.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export TP_BUILD_DIR=${TP_BUILD_DIR:-$ROOT/build}
OUT=$HERE/REPORT.md
SIZE=quick
ONLY=ingest,scoring,scheduler,notifier,scale,idle
while [ $# -gt 0 ]; do
    case $1 in
        --full) SIZE=full ;;
        --quick) SIZE=quick ;;
        --out) OUT=${2:?--out needs a path}; shift ;;
        --only) ONLY=${2:?--only needs bench names}; shift ;;
        *) echo "usage: bench/report/run.sh [--full] [--out FILE] [--only a,b]" >&2; exit 2 ;;
    esac
    shift
done

# Quick sizes: the same phases on fewer events (figures a little noisier).
quick_env() {
    case $1 in
        ingest) echo "HTTP_EVENTS=20000 ZMQ_EVENTS=10000 LAT_SECONDS=2 BENCH_SECONDS=0.5" ;;
        scoring) echo "EVENTS=20000 BENCH_SECONDS=0.5" ;;
        scheduler) echo "N=20000 CAL_N=2000 MEM_MAX=1000000 MEM_BUDGET_S=100 LAT_SECONDS=2" ;;
        notifier) echo "N=10000 E2E_N=5000" ;;
        scale) echo "EVENTS=20000" ;;
        idle) echo "RUNS=5 IDLE_S=3" ;;
    esac
}

RUN=$(mktemp -d /tmp/tp-bench-report.XXXXXX)
trap 'rm -rf "$RUN"' EXIT
failed=0
for b in ${ONLY//,/ }; do
    [ -x "$ROOT/bench/$b/run.sh" ] || [ -f "$ROOT/bench/$b/run.sh" ] ||
        { echo "report: no bench/$b/run.sh" >&2; exit 2; }
    sizes=""
    [ "$SIZE" = quick ] && sizes=$(quick_env "$b")
    echo "== bench/$b ${sizes:+($sizes)}" >&2
    start=$(date +%s)
    rc=0
    # shellcheck disable=SC2086
    env $sizes TP_BENCH_RESULT="$RUN/$b.json" bash "$ROOT/bench/$b/run.sh" \
        >"$RUN/$b.out" 2>"$RUN/$b.err" || rc=$?
    echo "$rc $(( $(date +%s) - start )) $sizes" >"$RUN/$b.status"
    [ "$rc" -eq 0 ] || { failed=1; echo "   failed ($rc): tail of its log:" >&2; tail -5 "$RUN/$b.err" >&2; }
done
python3 "$HERE/report.py" "$RUN" "$OUT" "$SIZE" ${ONLY//,/ }
echo "report: $OUT" >&2
exit $failed
