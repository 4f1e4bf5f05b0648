#!/usr/bin/env python3
"""Can one account with a very costly imported hash starve everyone's logins?

    bench/costly_hash.py BIN

BIN is a guichet binary (target/release/guichet). Needs PyPI's argon2-cffi to make the
imported hash: Argon2id m=256 MiB, t=16 (the most `member import` accepts; about 4 s per
check here). On a fresh SQLite database, ten robots send wrong passwords for that account
at once; 0.2 s later a bystander logs in to an ordinary account. Prints the bystander's
wait and answer, the robots' answers, and the server's peak memory (VmHWM).
"""

import http.client
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse

import argon2

from guichet_bench import cli, free_port, serve

BIN = sys.argv[1]
PASSWORD = "cheval agrafe pile 2026"
work = tempfile.mkdtemp()
port = free_port()
env = dict(os.environ, GUICHET_DATABASE_URL=f"sqlite://{work}/g.db", GUICHET_LISTEN=f"127.0.0.1:{port}",
           GUICHET_PUBLIC_URL=f"http://127.0.0.1:{port}", GUICHET_LOG="warn",
           GUICHET_MAIL_TRANSPORT=f"file:{work}/outbox")
costly = argon2.PasswordHasher(time_cost=16, memory_cost=262144, parallelism=1).hash("the right one")
with open(f"{work}/import.csv", "w") as f:
    f.write(f'identifier,email,name,role,groups,password_hash\nlourd,lourd@example.org,Lourd,member,,"{costly}"\n')
run = cli(BIN, env)
run("migrate")
run("member", "import", f"{work}/import.csv")
run("member", "add", "passant", "--email", "passant@example.org", "--password-stdin", stdin=PASSWORD)
server = serve(BIN, env, port)


def login(identifier, password, results, key):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("GET", "/login")
    r = c.getresponse()
    page = r.read().decode()
    cookies = [h.split(";")[0] for k, h in r.getheaders() if k.lower() == "set-cookie"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"csrf_token": token, "identifier": identifier, "password": password})
    start = time.monotonic()
    c.request("POST", "/login", body, {"Cookie": "; ".join(cookies), "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    results[key] = (r.status, time.monotonic() - start)


try:
    results = {}
    robots = [threading.Thread(target=login, args=("lourd", f"devine{n}", results, n)) for n in range(10)]
    for t in robots:
        t.start()
    time.sleep(0.2)
    bystander = threading.Thread(target=login, args=("passant", PASSWORD, results, "passant"))
    bystander.start()
    bystander.join()
    status, wait = results["passant"]
    print(f"bystander: HTTP {status} after {wait:.2f} s")
    for t in robots:
        t.join()
    answers = sorted(results[n] for n in range(10))
    print("robots: " + ", ".join(f"{s} in {w:.1f} s" for s, w in answers))
    with open(f"/proc/{server.pid}/status") as f:
        peak = next(line.split()[1] for line in f if line.startswith("VmHWM"))
    print(f"peak memory: {int(peak) / 1024:.0f} MiB")
finally:
    server.terminate()
    server.wait()
