#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# One-time machine set-up for ebbrt on Debian 12: installs the build and
# test dependencies that are missing, reserves 2 MiB hugepages and mounts
# hugetlbfs. Idempotent; quiet when everything is already there.
#   EBBRT_HUGEPAGES  2 MiB pages to reserve at least (default 1024)
set -euo pipefail

packages=(
	build-essential pkg-config meson ninja-build python3
	dpdk libdpdk-dev liburing-dev libjemalloc-dev libnuma-dev
	libcriterion-dev iputils-ping iproute2 gnuplot-nox tshark
	libmemcached-tools memcached
)
pages=${EBBRT_HUGEPAGES:-1024}

die() { echo "setup: $*" >&2; exit 1; }

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; run as root"
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null || die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi

nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
[ -w "$nr" ] || [ "$(cat "$nr" 2>/dev/null || echo 0)" -ge "$pages" ] ||
	die "cannot reserve hugepages: run as root (need $pages x 2 MiB)"
if [ "$(cat "$nr")" -lt "$pages" ]; then
	echo "$pages" > "$nr"
	have=$(cat "$nr")
	[ "$have" -ge "$pages" ] ||
		die "only $have of $pages hugepages could be reserved (memory too fragmented? try after a reboot)"
fi

if ! grep -q '^[^ ]* /dev/hugepages hugetlbfs' /proc/mounts; then
	mkdir -p /dev/hugepages
	mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages ||
		die "cannot mount hugetlbfs on /dev/hugepages"
fi
