#!/usr/bin/env python3
"""How fast a change reaches the forward-auth gate of another instance, and what two idle
instances cost PostgreSQL.

    bench/gate_changes.py BIN [POSTGRES_URL]

BIN is a guichet binary (target/release/guichet); POSTGRES_URL defaults to
postgres://postgres@127.0.0.1:5432/postgres. The script makes a database of its own
(guichet_bench_gate), starts two instances A and B on it, signs a member in on A, then:

- idle load: PostgreSQL's committed transactions per second on that database over 10 s,
  both instances idle (pg_stat_database.xact_commit);
- propagation: 20 times, `guichet member join` (another process), then B's /auth/check
  polled every millisecond until it lets the member into the group's folder; and the same
  for `member leave` until it refuses. Times are counted from the command's exit, after
  its commit.
"""

import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

from guichet_bench import cli, free_port, serve

BIN = sys.argv[1]
ADMIN_URL = sys.argv[2] if len(sys.argv) > 2 else "postgres://postgres@127.0.0.1:5432/postgres"
DB = "guichet_bench_gate"
DB_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + DB
PASSWORD = "cheval agrafe pile 2026"
BUREAU = "http://docs.example.org/bureau/pv.pdf"


def psql(url, sql):
    return subprocess.run(["psql", "-qAt", url, "-c", sql], check=True, capture_output=True, text=True).stdout.strip()


work = tempfile.mkdtemp()
config = os.path.join(work, "guichet.toml")
with open(config, "w") as f:
    f.write('[[access]]\nurl = "http://docs.example.org/"\ngroups = []\n\n'
            '[[access]]\nurl = "http://docs.example.org/bureau/"\ngroups = ["bureau"]\n')
env = dict(os.environ, GUICHET_DATABASE_URL=DB_URL, GUICHET_CONFIG=config, GUICHET_LOG="warn",
           GUICHET_MAIL_TRANSPORT="file:" + os.path.join(work, "outbox"), GUICHET_TRUSTED_PROXIES="127.0.0.1")

psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
psql(ADMIN_URL, f"CREATE DATABASE {DB}")
run = cli(BIN, env)
run("migrate")
run("member", "add", "bench", "--email", "bench@example.org", "--password-stdin", stdin=PASSWORD)
run("group", "add", "bureau")

servers = []
ports = []
for _ in range(2):
    port = free_port()
    e = dict(env, GUICHET_LISTEN=f"127.0.0.1:{port}", GUICHET_PUBLIC_URL=f"http://127.0.0.1:{port}")
    servers.append(serve(BIN, e, port))
    ports.append(port)

try:
    # Sign in on A.
    a = http.client.HTTPConnection("127.0.0.1", ports[0])
    a.request("GET", "/login")
    r = a.getresponse()
    page = r.read().decode()
    cookies = [h.split(";")[0] for k, h in r.getheaders() if k.lower() == "set-cookie"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"csrf_token": token, "identifier": "bench", "password": PASSWORD})
    a.request("POST", "/login", body, {"Cookie": "; ".join(cookies), "Content-Type": "application/x-www-form-urlencoded"})
    r = a.getresponse()
    r.read()
    assert r.status == 303, r.status
    session = [h.split(";")[0] for k, h in r.getheaders() if k.lower() == "set-cookie" and "session" in h][0]

    b = [http.client.HTTPConnection("127.0.0.1", ports[1])]

    def check():
        # One kept-alive connection, opened again when the server closed it (idle).
        for _ in range(2):
            try:
                b[0].request("GET", "/auth/check", headers={"Cookie": session, "X-Original-URL": BUREAU})
                r = b[0].getresponse()
                r.read()
                return r.status
            except (http.client.HTTPException, OSError):
                b[0].close()
                b[0] = http.client.HTTPConnection("127.0.0.1", ports[1])
        raise SystemExit("instance B does not answer")

    assert check() == 403
    time.sleep(2)
    before = int(psql(ADMIN_URL, f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{DB}'"))
    time.sleep(10)
    after = int(psql(ADMIN_URL, f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{DB}'"))
    print(f"idle: {(after - before) / 10:.1f} committed transactions/s on the database, two idle instances")

    timings = {"join": [], "leave": []}
    for _ in range(20):
        for action, expected in (("join", 200), ("leave", 403)):
            run("member", action, "bench", "bureau")
            start = time.monotonic()
            while check() != expected:
                time.sleep(0.001)
                if time.monotonic() - start > 5:
                    raise SystemExit(f"{action} never reached instance B")
            timings[action].append((time.monotonic() - start) * 1000)
    for action, values in timings.items():
        print(f"{action}: reached instance B in median {statistics.median(values):.1f} ms, "
              f"max {max(values):.1f} ms over {len(values)}")
finally:
    for s in servers:
        s.terminate()
        s.wait()
    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
