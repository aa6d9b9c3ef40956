#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The main job: set up the machine, build ebbrt (release), start a cluster
# of the example app on the default devices (one tap per node), show it
# serving (ping from Linux, messages between nodes, `ebbrt status`), stop
# it cleanly, then run the benchmarks against their Linux baselines.
# Results go to results/ (micro.json, msg.json, wake.json, udp.json and
# the UDP latency-versus-load plot udp-latency.png).
#   --quick   short benchmark runs (smoke test)
set -euo pipefail
cd "$(dirname "$0")/.."

bench_args=()
case "${1:-}" in
--quick) bench_args+=(--quick) ;;
-h | --help)
	sed -n '3,10p' "$0" | sed 's/^# \{0,1\}//'
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
ebbrt=$build/frontend/ebbrt

echo "== a cluster: ebbrt run -- ebbrt-demo (2 nodes on taps)"
log=$(mktemp /tmp/ebbrt-main-XXXXXX.log)
"$ebbrt" run --name main -- "$build/apps/examples/ebbrt-demo" >"$log" 2>&1 &
fe=$!
stop_cluster() {
	if kill -0 "$fe" 2>/dev/null; then
		"$ebbrt" stop --name main || kill -KILL "$fe"
	fi
	wait "$fe" 2>/dev/null || true
}
trap 'stop_cluster; rm -f "$log"' EXIT
for _ in $(seq 200); do
	[ "$(grep -c '^node [0-9]* ready' "$log")" -ge 2 ] && break
	kill -0 "$fe" 2>/dev/null || { cat "$log"; exit 1; }
	sleep 0.05
done
sleep 1.5	# the demo's message and GlobalIdMap checks
cat "$log"
for ip in $(sed -n 's/^node [0-9]* ready ip=\([0-9.]*\).*/\1/p' "$log"); do
	echo "== ping $ip (Linux -> node, over its tap)"
	ping -c 3 -i 0.2 "$ip" | tail -2
done
echo "== ebbrt status"
"$ebbrt" status --name main
echo "== ebbrt stop"
"$ebbrt" stop --name main
wait "$fe"
trap 'rm -f "$log"' EXIT
grep -q FAILED "$log" && { echo "a demo check failed"; exit 1; }

mkdir -p results
echo "== micro benchmark: ebbrt vs Linux, same run, same cores"
"$build/bench/ebbrt-bench-micro" --json results/micro.json "${bench_args[@]}"
echo "== message round trip between nodes vs a Linux unix-socket ping-pong"
"$build/bench/ebbrt-bench-msg" --json results/msg.json "${bench_args[@]}"
echo "== wake-up of a halted node (ICMP echo after idle) vs a Linux process"
"$build/bench/ebbrt-bench-wake" --json results/wake.json "${bench_args[@]}"
echo "== UDP echo: ebbrt nodes over a virtual wire vs Linux epoll and io_uring"
"$build/bench/ebbrt-bench-udp" --json results/udp.json --out results "${bench_args[@]}"
