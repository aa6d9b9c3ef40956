#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# ebbrt-bench-tcp --quick against the Linux servers and, with root and
# hugepages, ebbrt (a two-node cluster over a virtual wire): it must
# finish, and its JSON must hold a nonzero rate, round trip and stream
# figure for every system, with no request lost. About 10 s.
#   bench_tcp.sh BUILD_ROOT
set -euo pipefail

build=${1:?usage: bench_tcp.sh BUILD_ROOT}
bench=$build/bench/ebbrt-bench-tcp
[ -x "$bench" ] || { echo "bench_tcp: no $bench" >&2; exit 1; }

tmp=$(mktemp -d /tmp/bench_tcp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

systems="epoll io_uring"
# ebbrt runs `ebbrt run`: DPDK in its nodes needs root and hugepages.
if [ "$(id -u)" = 0 ] &&
   awk '/HugePages_Free/ { exit !($2 > 0) }' /proc/meminfo; then
	systems="$systems ebbrt"
else
	echo "bench_tcp: no root or no free hugepages: Linux systems only"
fi
sut=$(echo "$systems" | tr ' ' ,)

if ! "$bench" --quick --no-plot --sut "$sut" --out "$tmp" >"$tmp/out" 2>&1; then
	cat "$tmp/out"
	echo "bench_tcp: ebbrt-bench-tcp --quick failed" >&2
	exit 1
fi
cat "$tmp/out"

# One object a line: "metric": "tcp SYSTEM TEST STAT", "value": V, ...
value() {
	awk -v m="\"tcp $1\"," '
		index($0, "\"metric\": " m) {
			sub(/.*"value": /, ""); sub(/,.*/, ""); print; found = 1
		}
		END { if (!found) print "missing" }' "$tmp/tcp.json"
}

fail=0
for sys in $systems; do
	for m in "rr 1 conn rate" "rr 1 conn p50" "rr 64 conns rate" \
		 "rr 64 conns p99" "stream rx"; do
		v=$(value "$sys $m")
		if [ "$v" = missing ] || ! awk -v v="$v" 'BEGIN { exit !(v > 0) }'; then
			echo "bench_tcp: $sys $m is $v, expected > 0" >&2
			fail=1
		fi
	done
	for m in "rr 1 conn lost" "rr 64 conns lost"; do
		v=$(value "$sys $m")
		if [ "$v" != 0 ]; then
			echo "bench_tcp: $sys $m is $v, expected 0" >&2
			fail=1
		fi
	done
done
[ "$fail" = 0 ] && echo "bench_tcp: ok"
exit "$fail"
