#!/usr/bin/env bash
# The whole suite on SQLite and on PostgreSQL (a throwaway server the tests start
# themselves, see tests/stores.py). Fails if either run fails; prints both counts.
# Extra arguments go to both pytest runs.
#
# The two runs go side by side: the suite mostly waits on its real processes
# (admin, mitmdump, upstream, Chromium), about a third of one core's worth here,
# so two runs at once take little longer than one. Each run's output goes to
# var/test-<store>.log and is printed whole when both are done, one after the
# other; a line of progress is printed every minute meanwhile.
# SIDE_BY_SIDE=0 runs them one after the other instead.
#
# Each run also spreads its test files over WORKERS pytest-xdist workers (default 2;
# WORKERS=1: no xdist), a file's tests staying together so its fixtures start once:
# the suite waits on timeouts, polls and real processes more than it computes.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STORES=(sqlite postgresql)
mkdir -p var

# mitmproxy makes its CA in ~/.mitmproxy on first start: make it once, before two runs race for it.
"$PY" -c 'import os; from mitmproxy.certs import CertStore
CertStore.from_store(os.path.expanduser("~/.mitmproxy"), "mitmproxy", 2048)' || exit 1

# Bytecode once, before the runs: every admin, mitmdump and CLI process the tests start
# (hundreds per store) reads it instead of compiling the project again (about 0.25 s of
# CPU each). PYTHONDONTWRITEBYTECODE, where the environment sets it, would also make every
# pytest worker rewrite the test modules afresh; the caches are ignored by git.
unset PYTHONDONTWRITEBYTECODE
"$PY" -m compileall -q -j 0 admin addons models pool tests tools bench run_admin.py run_proxy.py \
	>/dev/null || exit 1

declare -A pid status elapsed
start=$SECONDS
WORKERS=${WORKERS:-2}
XDIST=()
[ "$WORKERS" -gt 1 ] && XDIST=(-n "$WORKERS" --dist loadfile)
run_suite() {  # store, then pytest arguments
	local store=$1
	shift
	PORTCULLIS_TEST_STORE=$store "$PY" -m pytest "${XDIST[@]}" "$@" >"var/test-$store.log" 2>&1
}

if [ "${SIDE_BY_SIDE:-1}" = 0 ]; then
	for store in "${STORES[@]}"; do
		begun=$SECONDS
		run_suite "$store" "$@"
		status[$store]=$?
		elapsed[$store]=$((SECONDS - begun))
	done
else
	for store in "${STORES[@]}"; do
		run_suite "$store" "$@" &
		pid[$store]=$!
	done
	while true; do
		running=0
		for store in "${STORES[@]}"; do
			[ -n "${status[$store]:-}" ] && continue
			if kill -0 "${pid[$store]}" 2>/dev/null; then
				running=1
			else
				wait "${pid[$store]}"
				status[$store]=$?
				elapsed[$store]=$((SECONDS - start))
			fi
		done
		[ $running = 1 ] || break
		sleep 5 # polling two child processes for the progress lines, nothing to synchronise with
		if (((SECONDS - start) % 60 < 5)); then
			for store in "${STORES[@]}"; do
				progress=$(grep -o '\[ *[0-9]*%\]' "var/test-$store.log" | tail -n 1)
				echo "$((SECONDS - start)) s: $store ${progress:-starting}${status[$store]:+ done}"
			done
		fi
	done
fi

failed=0
for store in "${STORES[@]}"; do
	echo "=== the suite on $store ==="
	cat "var/test-$store.log"
done
echo "=== both stores ($((SECONDS - start)) s) ==="
for store in "${STORES[@]}"; do
	summary=$(tail -n 1 "var/test-$store.log" | tr -d '=')
	echo "$store: $summary (${elapsed[$store]} s), exit status ${status[$store]}"
	[ "${status[$store]}" -eq 0 ] || failed=1
done
exit $failed
