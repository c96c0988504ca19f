#!/usr/bin/env bash
# bench/soak/run.sh: the long versions of tests/chaos/ (issue 7's sizes):
# 100,000 events through the crash storm, Redis hung for 30 s, a consumer
# stopped for a minute, 10,000 reminders due in the same second. Prints
# each test's figures (the README's "Guarantees" table). About 15 minutes.
#
#   bench/soak/run.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export TP_BUILD_DIR=${1:-$top/build}
export PYTHONPATH=$top/tests/lib
export CHAOS_EVENTS=${CHAOS_EVENTS:-100000} CHAOS_RATE=${CHAOS_RATE:-1000}
export CHAOS_KILL_EVERY=${CHAOS_KILL_EVERY:-3}
export CHAOS_REDIS_DOWN=${CHAOS_REDIS_DOWN:-30} CHAOS_STOPPED=${CHAOS_STOPPED:-60}
export CHAOS_REMINDERS=${CHAOS_REMINDERS:-10000}
failed=0
for t in "$top"/tests/chaos/test_*.py; do
  echo "== $(basename "$t")"
  python3 "$t" || failed=1
done
exit $failed
