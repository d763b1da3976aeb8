#!/usr/bin/env python3
"""faults_backend.py: a healthy or a misbehaving HTTP backend, for compare.sh's faults workload.

usage: faults_backend.py PORT NAME [--cycle STEPS]

Listens on 127.0.0.1:PORT (one thread per connection, keep-alive) and answers every request
(its body, if any, is ignored: the workload sends only GET /) with the step of STEPS, a
comma-separated list, that comes next; the position is shared by all connections, so the mix is
the same whatever the proxy's connections look like. The steps:

  ok                200, Content-Length, body(NAME), X-Backend: NAME; the connection stays open
  reset             the request is read, then the connection is reset (SO_LINGER 0 close)
                    before a byte of the answer
  truncated         a 200 head announcing body(NAME) whole, half of the body, then close
  duplicate-length  a 200 head with two different Content-Length fields (ambiguous framing)
                    over a body that is not body(NAME), then close
  stall             nothing for STALL_SECONDS (3 s, past the proxies' 2 s read timeout), then
                    the ok answer

The default --cycle is FAULTY_CYCLE for NAME "faulty" and "ok" (a healthy backend) for any
other NAME; the faults workload runs "healthy" and "faulty". A request for /_cycle/reset puts
the position back at the first step and is answered 204 (compare.sh sends it to the faulty
backend before each run, so that every run sees the same sequence). faults_client.py imports
body() to tell a correct answer from a corrupt one.
"""

import argparse
import socket
import socketserver
import struct
import sys
import threading
import time

STEPS = ("ok", "reset", "truncated", "duplicate-length", "stall")
# 12 steps, 4 of them faults: ~1,200 of the 2,400 requests reach the faulty backend, ~100 of
# each fault; the ~100 stalls cost 2 s each over 16 clients, ~13 s of a run.
FAULTY_CYCLE = "ok,ok,reset,ok,ok,truncated,ok,ok,duplicate-length,ok,ok,stall"
STALL_SECONDS = 3.0
HEAD_LIMIT = 65536


def body(name):
    """The body of a correct answer from backend NAME: its name, a known pattern, a newline."""
    return (f"{name} backend says hello: " + "0123456789abcdef" * 8 + "\n").encode()


def ok_answer(name):
    payload = body(name)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            + f"X-Backend: {name}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)


class Cycle:
    def __init__(self, steps):
        self.steps = steps
        self.next = 0
        self.lock = threading.Lock()

    def reset(self):
        with self.lock:
            self.next = 0

    def take(self):
        with self.lock:
            step = self.steps[self.next % len(self.steps)]
            self.next += 1
            return step


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        name, cycle = self.server.name, self.server.cycle
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                if len(buf) > HEAD_LIMIT:
                    return
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            close = b"\r\nconnection: close" in head.lower()
            if head.startswith(b"GET /_cycle/reset "):
                cycle.reset()
                try:
                    sock.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass
                return
            step = cycle.take()
            try:
                if step == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()  # now: socketserver's shutdown(SHUT_WR) would send a FIN first
                    return
                if step == "truncated":
                    payload = body(name)
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 + f"X-Backend: {name}\r\n".encode()
                                 + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                                 + payload[:len(payload) // 2])
                    return
                if step == "duplicate-length":
                    payload = b"ambiguous framing, not a correct body\n" * 4
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 + f"X-Backend: {name}\r\nX-Fault: duplicate-length\r\n".encode()
                                 + f"Content-Length: {len(payload) // 2}\r\n".encode()
                                 + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                    return
                if step == "stall":
                    time.sleep(STALL_SECONDS)
                sock.sendall(ok_answer(name))
            except OSError:
                return
            if close:
                return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("name")
    parser.add_argument("--cycle")
    args = parser.parse_args()
    steps = (args.cycle or (FAULTY_CYCLE if args.name == "faulty" else "ok")).split(",")
    for step in steps:
        if step not in STEPS:
            sys.exit(f"faults_backend.py: unknown step '{step}' ({', '.join(STEPS)})")
    server = Server(("127.0.0.1", args.port), Handler)
    server.name = args.name
    server.cycle = Cycle(steps)
    server.serve_forever()


if __name__ == "__main__":
    main()
