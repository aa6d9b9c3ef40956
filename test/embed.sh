#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Embedding: install libebbrt into a scratch prefix, build a C program
# against it with nothing but `pkg-config --cflags --libs ebbrt`, run it.
set -euo pipefail
build=$1
src=$2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --destdir "$dest" --quiet >/dev/null
pc=$(find "$dest" -name ebbrt.pc | head -n 1)
# The scratch prefix stands in for the real one.
prefix=$(sed -n 's/^prefix=//p' "$pc")
sed -i "s|^prefix=.*|prefix=$dest$prefix|" "$pc"
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --cflags --libs ebbrt)
echo "pkg-config --cflags --libs ebbrt: $flags"
cc -std=gnu11 -Wall -Wextra -Werror -o "$dest/hello" "$src" $flags
libdir=$(dirname "$(find "$dest" -name 'libebbrt.so' | head -n 1)")
# A sanitizer build of the library needs its runtime loaded first.
preload=$(ldd "$libdir/libebbrt.so" | awk '/libasan|libubsan/ { print $3 }' | paste -sd: -)
LD_PRELOAD=$preload LD_LIBRARY_PATH=$libdir "$dest/hello" 0-1
