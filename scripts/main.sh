#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The main job: set up the machine, build ebbrt (release), start a cluster
# serving ebb-kv (memcached's protocols on the ebbrt TCP stack) on the
# default devices (one tap per node), show it serving (memccp/memccat and
# memcslap from Linux, `ebbrt status`), run the ebb-kv versus memcached
# comparison (table, results/kv.json, plot results/kv-latency.png), stop the
# cluster cleanly. --all also runs the other benchmarks against their
# Linux baselines (micro, msg, wake, udp, tcp) into results/.
#   --quick   short benchmark runs (smoke test)
#   --all     every benchmark, not only the kv comparison
set -euo pipefail
cd "$(dirname "$0")/.."

bench_args=()
all=0
for a in "$@"; do
	case "$a" in
	--quick) bench_args+=(--quick) ;;
	--all) all=1 ;;
	-h | --help)
		sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "usage: $0 [--quick] [--all]" >&2
		exit 2
		;;
	esac
done

bash scripts/setup.sh
build=build
if [ -f "$build/build.ninja" ]; then
	meson setup --reconfigure "$build" --buildtype=release -Ddeveloper_mode=false >/dev/null
else
	meson setup "$build" --buildtype=release -Ddeveloper_mode=false >/dev/null
fi
ninja -C "$build" >/dev/null
ebbrt=$build/frontend/ebbrt

echo "== a cluster: ebbrt run -- ebbrt-kv (2 nodes on taps)"
log=$(mktemp /tmp/ebbrt-main-XXXXXX.log)
"$ebbrt" run --name main -- "$build/apps/kv/ebbrt-kv" -m 256 >"$log" 2>&1 &
fe=$!
stop_cluster() {
	if kill -0 "$fe" 2>/dev/null; then
		"$ebbrt" stop --name main || kill -KILL "$fe"
	fi
	wait "$fe" 2>/dev/null || true
}
trap 'stop_cluster; rm -f "$log"' EXIT
for _ in $(seq 200); do
	[ "$(grep -c 'serving memcached' "$log")" -ge 2 ] && break
	kill -0 "$fe" 2>/dev/null || { cat "$log"; exit 1; }
	sleep 0.05
done
cat "$log"
for ip in $(sed -n 's/^node [0-9]* ready ip=\([0-9.]*\).*/\1/p' "$log"); do
	echo "== ebb-kv on $ip:11211, from Linux's libmemcached tools"
	memccp --servers="$ip:11211" "$build/build.ninja"
	memccat --servers="$ip:11211" build.ninja | head -c -1 |
		cmp - "$build/build.ninja" && echo "memccp/memccat: same bytes"
	memcslap --servers="$ip:11211" --concurrency=8 --execute-number=1000 \
		--test=get | grep -i "time total\|failed" || true
done
echo "== ebbrt status"
"$ebbrt" status --name main

mkdir -p results
echo "== ebb-kv vs memcached -t 1: memcached protocol, 90% get, 64 connections"
"$build/bench/ebbrt-bench-kv" --out results "${bench_args[@]}"
echo "plot: results/kv-latency.png, figures: results/kv.json"

echo "== ebbrt stop"
"$ebbrt" stop --name main
wait "$fe"
trap 'rm -f "$log"' EXIT
[ "$all" = 1 ] || exit 0

echo "== micro benchmark: ebbrt vs Linux, same run, same cores"
"$build/bench/ebbrt-bench-micro" --json results/micro.json "${bench_args[@]}"
echo "== message round trip between nodes vs a Linux unix-socket ping-pong"
"$build/bench/ebbrt-bench-msg" --json results/msg.json "${bench_args[@]}"
echo "== wake-up of a halted node (ICMP echo after idle) vs a Linux process"
"$build/bench/ebbrt-bench-wake" --json results/wake.json "${bench_args[@]}"
echo "== UDP echo: ebbrt nodes over a virtual wire vs Linux epoll and io_uring"
"$build/bench/ebbrt-bench-udp" --json results/udp.json --out results "${bench_args[@]}"
echo "== TCP: ebbrt nodes over a virtual wire vs Linux loopback (epoll, io_uring)"
"$build/bench/ebbrt-bench-tcp" --out results "${bench_args[@]}"
