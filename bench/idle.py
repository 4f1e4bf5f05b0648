#!/usr/bin/env python3
"""Opens N idle TCP connections to HOST:PORT (spread over several processes, each with
its own file-descriptor limit), then times GET /healthz on fresh connections while they
are held. Prints one line: how many were open, and /healthz's answers and latencies."""
import multiprocessing
import resource
import socket
import sys
import time


def hold(host, port, first, n, ready, release):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = []
    for i in range(first, first + n):
        s = socket.socket()
        s.setblocking(True)
        try:
            # Each from its own loopback address (127.1.x.y): a flood from many addresses,
            # which guichet's per-address cap does not stop on its own.
            s.bind((f"127.1.{i // 250}.{1 + i % 250}", 0))
            s.connect((host, port))
            held.append(s)
        except OSError:
            s.close()
            break
    ready.put(len(held))
    release.wait()
    for s in held:
        s.close()


def health(host, port):
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = s.recv(64)
        status = answer.split(b" ")[1].decode() if answer else "closed"
    except OSError as error:
        status = type(error).__name__
    return status, (time.monotonic() - started) * 1000


def main():
    host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    per_process = 9000
    ready, release = multiprocessing.Queue(), multiprocessing.Event()
    workers = []
    for start in range(0, total, per_process):
        p = multiprocessing.Process(target=hold, args=(host, port, start, min(per_process, total - start), ready, release))
        p.start()
        workers.append(p)
    opened = sum(ready.get() for _ in workers)
    answers = [health(host, port) for _ in range(20)]
    release.set()
    for p in workers:
        p.join()
    statuses = sorted({a[0] for a in answers})
    times = sorted(a[1] for a in answers)
    print(f"idle connections opened: {opened}; /healthz x20: {statuses}, "
          f"median {times[len(times)//2]:.1f} ms, max {times[-1]:.1f} ms")


if __name__ == "__main__":
    main()
