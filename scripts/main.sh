#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The main job: set up the machine, build ebbrt (release), run the example
# node, then the micro benchmark against its Linux baselines. Results go
# to results/ (micro.json).
#   --quick   a short benchmark run (smoke test)
set -euo pipefail
cd "$(dirname "$0")/.."

bench_args=()
case "${1:-}" in
--quick) bench_args+=(--quick) ;;
-h | --help)
	sed -n '3,7p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "usage: $0 [--quick]" >&2
	exit 2
	;;
esac

bash scripts/setup.sh
build=build
if [ -f "$build/build.ninja" ]; then
	meson setup --reconfigure "$build" --buildtype=release -Ddeveloper_mode=false >/dev/null
else
	meson setup "$build" --buildtype=release -Ddeveloper_mode=false >/dev/null
fi
ninja -C "$build" >/dev/null

echo "== example node (apps/examples/hello.c)"
"$build/apps/examples/ebbrt-hello"

mkdir -p results
echo "== micro benchmark: ebbrt vs Linux, same run, same cores"
"$build/bench/ebbrt-bench-micro" --json results/micro.json "${bench_args[@]}"
