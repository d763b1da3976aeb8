#!/usr/bin/env python3
"""faults_client.py: what clients see of backend faults, for compare.sh's faults workload.

usage: faults_client.py PORT [--requests 2400] [--connections 16] [--timeout 10]

Sends --requests "GET /" requests to 127.0.0.1:PORT from --connections threads, each on a
keep-alive connection of its own, one request at a time, and classifies every answer:

  correct    status 200, complete, and its body is body(X-Backend) of faults_backend.py
  5xx        a complete answer with a 5xx status (the proxy's own 502/503/504, say)
  truncated  the connection closed or was reset before the answer was complete, or no whole
             answer within --timeout seconds (the client saw the failure); no_answer counts
             those of them that got no byte of an answer at all
  corrupt    a 200 that is complete by its framing but whose body is not the backend's, or
             whose framing is wrong: two different Content-Length fields, Content-Length with
             chunked, bytes after its end; also an answer whose head does not parse
  other      any other complete answer (1xx to 4xx but 200)

After a truncated or corrupt answer, a Connection: close or an answer framed by the close, the
thread opens a new connection for its next request. Prints one line:

    requests=2400 correct=N 5xx=N truncated=N corrupt=N other=N no_answer=N seconds=S

and on stderr the first example of each kind but correct, with the reason.
"""

import argparse
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the import below
from faults_backend import body  # noqa: E402 (this script's directory is on sys.path)

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: faults_client\r\n\r\n"
HEAD_LIMIT = 65536
KINDS = ("correct", "5xx", "truncated", "corrupt", "other", "no_answer")
EXPECTED = {name: body(name) for name in ("healthy", "faulty")}


class Truncated(Exception):
    pass


class Reader:
    """Reads from sock until a deadline; raises Truncated on close, reset or timeout."""

    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline
        self.buf = b""
        self.received = 0

    def more(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Truncated("timed out")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Truncated("timed out") from None
        except OSError as e:
            raise Truncated(f"recv: {e.strerror or e}") from None
        if not data:
            raise Truncated("closed")
        self.received += len(data)
        self.buf += data

    def take(self, count):
        while len(self.buf) < count:
            self.more()
        out, self.buf = self.buf[:count], self.buf[count:]
        return out

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > HEAD_LIMIT:
                raise ValueError("line over 64 KiB")
            self.more()
        out, _, self.buf = self.buf.partition(b"\r\n")
        return out


def read_chunked(reader):
    payload = b""
    while True:
        size_line = reader.line().split(b";")[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise ValueError(f"bad chunk size {size_line[:20]!r}") from None
        if size == 0:
            while reader.line():  # trailers, up to the empty line
                pass
            return payload
        payload += reader.take(size)
        if reader.take(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")


def one_answer(reader):
    """Returns (kind, reason, keep_open) for one answer read from reader."""
    while b"\r\n\r\n" not in reader.buf:
        if len(reader.buf) > HEAD_LIMIT:
            return "corrupt", "answer head over 64 KiB", False
        reader.more()
    head, _, reader.buf = reader.buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return "corrupt", f"status line {lines[0][:60]!r}", False
    status, version = int(parts[1]), parts[0]
    fields = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            return "corrupt", f"header line {line[:60]!r}", False
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    lengths = set(fields.get(b"content-length", []))
    chunked = any(b"chunked" in v.lower() for v in fields.get(b"transfer-encoding", []))
    connection = b",".join(fields.get(b"connection", [])).lower()
    keep_open = b"close" not in connection and (version == b"HTTP/1.1" or b"keep-alive" in connection)
    framing = ""
    if len(lengths) > 1:
        framing = "two different Content-Length fields " + b", ".join(sorted(lengths)).decode()
    elif lengths and chunked:
        framing = "Content-Length with chunked"
    if framing:
        return ("corrupt" if status == 200 else "other"), framing, False
    try:
        if chunked:
            payload = read_chunked(reader)
        elif lengths:
            payload = reader.take(int(next(iter(lengths))))
        elif status in (204, 304) or 100 <= status < 200:
            payload = b""
        else:  # framed by the close
            payload, keep_open = b"", False
            try:
                while True:
                    reader.more()
            except Truncated as e:
                if str(e) != "closed":
                    raise
            payload, reader.buf = reader.buf, b""
    except ValueError as e:
        return "corrupt", str(e), False
    if reader.buf:
        return ("corrupt" if status == 200 else "other"), \
            f"{len(reader.buf)} bytes after the end of a {status} answer", False
    if 500 <= status < 600:
        return "5xx", f"status {status}", keep_open
    if status != 200:
        return "other", f"status {status}", keep_open
    backend = fields.get(b"x-backend", [b"?"])[0].decode("latin-1")
    if EXPECTED.get(backend) != payload:
        return "corrupt", f"a 200 whose body is not the backend's ({len(payload)} bytes," \
            f" X-Backend {backend}): {payload[:40]!r}", False
    return "correct", "", keep_open


class Client(threading.Thread):
    def __init__(self, run, port, timeout):
        super().__init__(daemon=True)
        self.run_state, self.port, self.timeout = run, port, timeout
        self.counts = dict.fromkeys(KINDS, 0)
        self.examples = {}

    def run(self):
        sock = None
        while self.run_state.take():
            deadline = time.monotonic() + self.timeout
            reader = None
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                reader = Reader(sock, deadline)
                sock.sendall(REQUEST)
                kind, reason, keep_open = one_answer(reader)
            except Truncated as e:
                kind, reason, keep_open = "truncated", str(e), False
            except OSError as e:
                kind, reason, keep_open = "truncated", f"{e.strerror or e}", False
            if kind == "truncated" and (reader is None or reader.received == 0):
                self.counts["no_answer"] += 1
                reason += " (no byte of an answer)"
            self.counts[kind] += 1
            if kind != "correct":
                self.examples.setdefault(kind, reason)
            if not keep_open and sock is not None:
                sock.close()
                sock = None
        if sock is not None:
            sock.close()


class Run:
    def __init__(self, requests):
        self.left = requests
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--requests", type=int, default=2400)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if args.requests < 1 or args.connections < 1 or args.timeout <= 0:
        sys.exit("faults_client.py: --requests, --connections and --timeout must be positive")
    run = Run(args.requests)
    start = time.monotonic()
    clients = [Client(run, args.port, args.timeout) for _ in range(args.connections)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    counts = dict.fromkeys(KINDS, 0)
    examples = {}
    for client in clients:
        for kind in KINDS:
            counts[kind] += client.counts[kind]
        for kind, reason in client.examples.items():
            examples.setdefault(kind, reason)
    for kind, reason in examples.items():
        print(f"faults_client.py: first {kind}: {reason}", file=sys.stderr)
    print(f"requests={args.requests} " + " ".join(f"{k}={counts[k]}" for k in KINDS)
          + f" seconds={time.monotonic() - start:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
