#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Set up the machine, build ebbrt in developer mode (-Wall -Wextra
# -Werror, debug checks) and run every test. The last line is
# "N passed, N failed"; the exit code is non-zero on any failure.
#   --sanitize   build with ASan and UBSan into build-asan instead
set -uo pipefail
cd "$(dirname "$0")/.."

build=build-test
opts=(--buildtype=debugoptimized -Ddeveloper_mode=true)
case "${1:-}" in
--sanitize)
	build=build-asan
	opts+=(-Db_sanitize=address,undefined -Db_lundef=false)
	# DPDK keeps process-lifetime state that leak reports would list;
	# SEGV is left to the tests that expect it (guard pages).
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:handle_segv=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	;;
-h | --help)
	sed -n '3,7p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "usage: $0 [--sanitize]" >&2
	exit 2
	;;
esac

bash scripts/setup.sh || exit 1
if [ -f "$build/build.ninja" ]; then
	meson setup --reconfigure "$build" "${opts[@]}" >/dev/null
else
	meson setup "$build" "${opts[@]}" >/dev/null
fi || { echo "0 passed, 1 failed"; exit 1; }
ninja -C "$build" || { echo "0 passed, 1 failed"; exit 1; }

meson test -C "$build" --num-processes 1 --print-errorlogs
rc=$?
python3 scripts/count-tests.py "$build/meson-logs/testlog.json" || rc=1
exit $rc
