#!/usr/bin/env python3
"""latency_client.py: the latency of single requests, one at a time, for compare.sh's nagle workload.

usage: latency_client.py PORT COUNT [--keep-alive] [--warmup N] [--slow MS]

Sends COUNT "GET /" requests to 127.0.0.1:PORT one after the other, each on a connection of its
own (connect, send, read the whole answer, close; the time counted runs from connect() to the
answer's last byte) or, with --keep-alive, all on one keep-alive connection (from send() to the
last byte). --warmup N requests (default 10) go first and are not counted: on a fresh proxy they
open the backend connections that the measured requests then reuse. Answers must be 200 with a
Content-Length; anything else, a reset or a 10 s wait counts as an error (and, keep-alive, opens
a new connection for the next request).

Prints one line:
    requests=COUNT errors=E slow=S p50=MS p90=MS p99=MS max=MS
slow: the answered requests that took over --slow milliseconds (default 30: a delayed ACK on
Linux costs 40 ms). Percentiles are nearest-rank over the answered requests, in milliseconds.
wrk cannot do this: it neither opens a connection per request nor counts requests over a bound.
"""

import argparse
import math
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the import below
from idle_clients import answer_done  # noqa: E402 (this script's directory is on sys.path)

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: latency_client\r\n\r\n"
TIMEOUT = 10.0  # seconds for one request


class BadAnswer(Exception):
    pass


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock):
    """Reads one whole answer (a 200 with a Content-Length) from sock; raises BadAnswer."""
    buf = b""
    while (wrong := answer_done(buf)) is None:
        data = sock.recv(65536)
        if not data:
            raise BadAnswer("connection closed before the whole answer")
        buf += data
    if wrong:
        raise BadAnswer(wrong)


def one_fresh(port):
    start = time.perf_counter()
    with connect(port) as sock:
        sock.sendall(REQUEST)
        read_answer(sock)
        return time.perf_counter() - start


class KeepAlive:
    def __init__(self, port):
        self.port = port
        self.sock = None

    def request(self):
        if self.sock is None:
            self.sock = connect(self.port)
        start = time.perf_counter()
        try:
            self.sock.sendall(REQUEST)
            read_answer(self.sock)
        except (OSError, BadAnswer):
            self.sock.close()
            self.sock = None
            raise
        return time.perf_counter() - start


def percentile(sorted_values, p):
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--keep-alive", action="store_true")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--slow", type=float, default=30.0)
    args = parser.parse_args()
    if args.count < 1 or args.warmup < 0:
        sys.exit("latency_client.py: COUNT must be at least 1 and --warmup at least 0")

    keep_alive = KeepAlive(args.port) if args.keep_alive else None
    times_ms = []
    errors = 0
    first_error = ""
    for i in range(args.warmup + args.count):
        try:
            seconds = keep_alive.request() if keep_alive else one_fresh(args.port)
        except (OSError, BadAnswer) as e:
            if i >= args.warmup:
                errors += 1
                first_error = first_error or str(e)
            continue
        if i >= args.warmup:
            times_ms.append(seconds * 1000)
    if not times_ms:
        print(f"requests={args.count} errors={errors} no answers (first error: {first_error})")
        return 1
    times_ms.sort()
    slow = sum(1 for t in times_ms if t > args.slow)
    print(f"requests={args.count} errors={errors} slow={slow}"
          f" p50={percentile(times_ms, 50):.3f} p90={percentile(times_ms, 90):.3f}"
          f" p99={percentile(times_ms, 99):.3f} max={times_ms[-1]:.3f}"
          + (f" first_error={first_error}" if first_error else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
