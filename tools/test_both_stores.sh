#!/usr/bin/env bash
# The whole suite on SQLite, then on PostgreSQL (a throwaway server the tests start
# themselves, see tests/stores.py). Fails if either run fails; prints both counts.
# Extra arguments go to both pytest runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p var
declare -A summary status
for store in sqlite postgresql; do
	echo "=== the suite on $store ==="
	start=$SECONDS
	PORTCULLIS_TEST_STORE=$store "$PY" -m pytest "$@" 2>&1 | tee "var/test-$store.log"
	status[$store]=${PIPESTATUS[0]}
	summary[$store]="$(tail -n 1 "var/test-$store.log" | tr -d '=') ($((SECONDS - start)) s)"
done
echo "=== both stores ==="
failed=0
for store in sqlite postgresql; do
	echo "$store: ${summary[$store]}, exit status ${status[$store]}"
	[ "${status[$store]}" -eq 0 ] || failed=1
done
exit $failed
