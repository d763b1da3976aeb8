#!/usr/bin/env python3
"""idle_clients.py: holds COUNT idle keep-alive connections open to a proxy, for compare.sh.

usage: idle_clients.py PORT COUNT [WINDOW]

Opens COUNT connections to 127.0.0.1:PORT, at most WINDOW (default 200) of them connecting or
waiting for their answer at a time, so the proxy's listen backlog never overflows. Each sends one
keep-alive "GET /" and reads the whole answer (a 200 with a Content-Length), so the connection has
gone through the proxy to the backend and back; then it stays open and idle. When all are done it
prints one line, "ready held=N failed=M first_error=...", and waits for SIGUSR1 (SIGTERM just
ends it). On SIGUSR1 it prints "open=K", the connections the proxy has not closed meanwhile, and
exits. Every socket has SO_LINGER 0, so the exit resets them all at once and leaves no TIME_WAIT.
"""

import errno
import resource
import select
import selectors
import signal
import socket
import struct
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle_clients\r\n\r\n"
CONNECTION_TIMEOUT = 10.0  # seconds for one connection to connect and get its answer
TOTAL_TIMEOUT = 120.0  # seconds for all of them


class Client:
    """One connection: connecting, then waiting for its answer in buf."""

    def __init__(self, sock, now):
        self.sock = sock
        self.buf = b""
        self.sent = False
        self.started = now


def raise_fd_limit(count):
    """The soft limit up to the hard one when COUNT sockets would not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = count + 64
    if soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < needed:
        sys.exit(f"idle_clients.py: {count} connections need {needed} file descriptors,"
                 f" the hard limit is {hard} (raise it: ulimit -n)")


def answer_done(buf):
    """None while the answer is incomplete; else "" when it is a whole 200, or what is wrong."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None if len(buf) < 65536 else "answer head over 64 KiB"
    lines = buf[:head_end].split(b"\r\n")
    if not lines[0].startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        return "status line " + lines[0][:60].decode("latin-1")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        return "answer without Content-Length"
    if len(buf) - head_end - 4 < length:
        return None
    return ""


def open_connections(port, count, window):
    """Returns (held sockets, failed count, first error)."""
    sel = selectors.DefaultSelector()
    linger = struct.pack("ii", 1, 0)
    held, failed, first_error = [], 0, ""
    started = 0
    deadline = time.monotonic() + TOTAL_TIMEOUT

    def fail(client, why):
        nonlocal failed, first_error
        failed += 1
        if not first_error:
            first_error = why
        sel.unregister(client.sock)
        client.sock.close()

    while started < count or sel.get_map():
        now = time.monotonic()
        while started < count and len(sel.get_map()) < window:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            sock.setblocking(False)
            rc = sock.connect_ex(("127.0.0.1", port))
            started += 1
            client = Client(sock, now)
            sel.register(sock, selectors.EVENT_WRITE, client)
            if rc not in (0, errno.EINPROGRESS):
                fail(client, "connect: " + errno.errorcode.get(rc, str(rc)))
        if now > deadline:
            for key in list(sel.get_map().values()):
                fail(key.data, f"not answered within {TOTAL_TIMEOUT:.0f} s in all")
            break
        for key, _ in sel.select(timeout=0.5):
            client = key.data
            try:
                if not client.sent:
                    err = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(client, "connect: " + errno.errorcode.get(err, str(err)))
                        continue
                    client.sock.sendall(REQUEST)  # 70 bytes into an empty socket buffer
                    client.sent = True
                    sel.modify(client.sock, selectors.EVENT_READ, client)
                    continue
                data = client.sock.recv(65536)
            except OSError as e:
                fail(client, f"{e.strerror or e}")
                continue
            if not data:
                fail(client, "closed before the whole answer")
                continue
            client.buf += data
            why = answer_done(client.buf)
            if why is None:
                continue
            if why:
                fail(client, why)
                continue
            sel.unregister(client.sock)
            held.append(client.sock)
        for key in list(sel.get_map().values()):
            if now - key.data.started > CONNECTION_TIMEOUT:
                fail(key.data, f"no answer within {CONNECTION_TIMEOUT:.0f} s")
    return held, failed, first_error


def count_open(held):
    """The sockets that are neither closed by the peer nor holding unexpected data."""
    poller = select.poll()
    for sock in held:
        poller.register(sock, select.POLLIN)
    return len(held) - len(poller.poll(0))


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    port, count = int(sys.argv[1]), int(sys.argv[2])
    window = int(sys.argv[3]) if len(sys.argv) == 4 else 200
    raise_fd_limit(count)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # before "ready": no race
    held, failed, first_error = open_connections(port, count, window)
    print(f"ready held={len(held)} failed={failed} first_error={first_error or '-'}", flush=True)
    signal.sigwait({signal.SIGUSR1})
    print(f"open={count_open(held)}", flush=True)


if __name__ == "__main__":
    main()
