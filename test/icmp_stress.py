#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""icmp_stress.py IP [IP...] COUNT: echo requests to each address in
turn, with random idle gaps (0 to 30 ms, a third of them none) so that the
node cores halt and wake between them; every request must be answered
within 1 s. Exit 1 on any loss. Needs root (raw socket)."""
import os
import random
import select
import socket
import struct
import sys
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main():
    ips, count = sys.argv[1:-1], int(sys.argv[-1])
    rnd = random.Random(42)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    lost = 0
    worst = 0.0
    for seq in range(count):
        ip = ips[seq % len(ips)]
        payload = struct.pack("!d", time.time()) + bytes(24)
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload
        t0 = time.monotonic()
        sock.sendto(pkt, (ip, 0))
        got = False
        while not got:
            left = 1.0 - (time.monotonic() - t0)
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                break
            data, addr = sock.recvfrom(2048)
            ihl = (data[0] & 0xF) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            got = typ == 0 and rid == ident and rseq == seq and addr[0] == ip
        if not got:
            lost += 1
            print("lost echo %d to %s" % (seq, ip))
        worst = max(worst, time.monotonic() - t0)
        gap = 0 if rnd.random() < 0.33 else rnd.uniform(0, 0.030)
        time.sleep(gap)
    print("%d echoes, %d lost, slowest %.2f ms" % (count, lost, worst * 1000))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
