#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Linux's side of test_tcp_linux: a plain socket peer of the ebbrt TCP
stack. The data is the tests' pattern, byte i = P[i % 65521] with
P[j] = (j*131 + (j >> 8) + 7) & 0xff, so that each side checks the other.
Prints one line of results; exits non-zero on any mismatch or error.

  tcp_peer.py send HOST PORT NBYTES          upload, then read the close
  tcp_peer.py recv HOST PORT NBYTES [STALL]  download (after STALL s)
  tcp_peer.py echo HOST PORT SECONDS SPORT   64-byte round trips
"""
import hashlib
import socket
import sys
import time

PAT = 65521
P = bytes(((j * 131 + (j >> 8) + 7) & 0xff) for j in range(PAT))
P2 = P + P


def chunks(total):
    off = 0
    while off < total:
        at = off % PAT
        n = min(PAT - at, total - off)
        yield P2[at:at + n]
        off += n


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0 = time.monotonic()
    if mode == "send":
        total = int(sys.argv[4])
        s = socket.create_connection((host, port), timeout=60)
        for c in chunks(total):
            s.sendall(c)
        s.shutdown(socket.SHUT_WR)
        # The server closes once it has checked everything.
        if s.recv(1) != b"":
            print("send: unexpected data")
            return 1
        dt = time.monotonic() - t0
        print("send: %d bytes in %.2f s (%.1f MB/s)" % (total, dt, total / dt / 1e6))
        return 0
    if mode == "recv":
        total = int(sys.argv[4])
        stall = float(sys.argv[5]) if len(sys.argv) > 5 else 0
        s = socket.socket()
        if stall:
            # A small buffer so that the window closes while we stall.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(60)
        s.connect((host, port))
        if stall:
            time.sleep(stall)
        want, got = hashlib.sha256(), hashlib.sha256()
        for c in chunks(total):
            want.update(c)
        n = 0
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got.update(d)
            n += len(d)
        dt = time.monotonic() - t0
        ok = n == total and want.digest() == got.digest()
        print("recv: %d of %d bytes in %.2f s (%.1f MB/s), sha256 %s" %
              (n, total, dt, n / dt / 1e6, "equal" if ok else "DIFFERENT"))
        return 0 if ok else 1
    if mode == "echo":
        secs, sport = float(sys.argv[4]), int(sys.argv[5])
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", sport))
        s.settimeout(5)
        s.connect((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        print("echo: connected", flush=True)
        n, msg = 0, P[:64]
        while time.monotonic() - t0 < secs:
            s.sendall(msg)
            r = b""
            while len(r) < 64:
                d = s.recv(64 - len(r))
                if not d:
                    print("echo: closed after %d" % n)
                    return 1
                r += d
            if r != msg:
                print("echo: wrong reply after %d" % n)
                return 1
            n += 1
        s.close()
        print("echo: %d round trips" % n)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
