#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# ebbrt-bench-kv end to end, short: Debian's memcached, ebbrt-kv-linux and,
# as root, ebb-kv on an ebbrt cluster (two nodes on a virtual wire, one
# cluster per test) under the memcached load (preload, closed and open
# loops, uniform and Zipf keys); every system and key distribution must
# reach a nonzero peak with no error reply, the JSON must say so, and the
# ebbrt target line must be printed for both distributions.
#   bench_kv.sh BUILD_ROOT
set -euo pipefail

build=${1:?usage: bench_kv.sh BUILD_ROOT}
exe=$build/bench/ebbrt-bench-kv
[ -x "$exe" ] || { echo "bench_kv: no $exe" >&2; exit 1; }
for t in memcached python3; do
	command -v "$t" >/dev/null ||
		{ echo "bench_kv: $t missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
suts=memcached,linux-kv
if [ "$(id -u)" = 0 ]; then
	suts=$suts,ebbrt
else
	echo "bench_kv: not root: the ebbrt system (a cluster) is left out"
fi

tmp=$(mktemp -d /tmp/bench_kv.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# 0.2 s of warm-up and 0.2 s measured per test, 20 000 keys: about 25 s
# for the two Linux servers, 20 s more for ebbrt (a cluster start and stop
# per test).
"$exe" --quick --duration 0.2 --keys 20000 --sut "$suts" \
	--dist both --no-plot --out "$tmp" | tee "$tmp/out"

python3 - "$tmp/kv.json" "$tmp/out" "$suts" <<'PY'
import json, sys

rows = {r["metric"]: r for r in json.load(open(sys.argv[1]))}
out = open(sys.argv[2]).read()
bad = []
for sut in sys.argv[3].split(","):
    for dist in ("uniform", "zipf"):
        peak = rows.get(f"kv {sut} {dist} peak")
        errs = rows.get(f"kv {sut} {dist} errors")
        if peak is None or not peak["value"] > 0:
            bad.append(f"{sut} {dist}: peak {peak and peak['value']}")
        if errs is None or errs["value"] != 0:
            bad.append(f"{sut} {dist}: errors {errs and errs['value']}")
        if sut == "ebbrt" and \
           f"target: ebbrt >= 3x memcached throughput at p99 500us per server core, {dist} keys" not in out:
            bad.append(f"ebbrt {dist}: no target line")
for b in bad:
    print("bench_kv: FAIL", b)
sys.exit(1 if bad else 0)
PY
echo "bench_kv: ok"
