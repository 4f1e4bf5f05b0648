#!/usr/bin/env python3
"""Personal data at scale: the retention round and the member's export.

    bench/privacy.py BIN [MEMBERS] [LINES]

BIN is a guichet binary (target/release/guichet). The script makes a fresh SQLite database
with MEMBERS (2000) members and LINES (500000) audit lines spread over two years (logins
with their address and browser, one in five a failed attempt), one member ("modele")
holding 2000 of them, then measures:

- `guichet retention`: how long saying what the next round removes takes (it counts);
- the housekeeping round `guichet serve` runs at start: how long until the lines past a
  year are gone, the failed attempts past a day too, and the addresses past 90 days cut
  (read from the database every 50 ms), and the logins ("modele", one after another)
  answered meanwhile, p50/p99, beside the same logins once the round is over (the round
  deletes and cuts by batches of 2000 rows, each its own transaction);
- `GET /me/export.json` and `GET /me/export` for "modele": p50/p99 over 50 requests each,
  and the JSON's size;
- RSS of guichet at the end (VmRSS, VmHWM).
"""

import os
import random
import sqlite3
import sys
import tempfile
import threading
import time

import requests

from guichet_bench import cli, field, free_port, members, memory, percentile, serve

BIN = sys.argv[1]
MEMBERS = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
LINES = int(sys.argv[3]) if len(sys.argv) > 3 else 500_000
PASSWORD = "cheval agrafe pile 2026"
DAY_MS = 86_400_000
AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def seed(db, now_ms):
    """The audit lines, written straight into the database in one transaction."""
    con = sqlite3.connect(db)
    ids = [row[0] for row in con.execute("SELECT id FROM accounts ORDER BY id")]
    modele = con.execute("SELECT id FROM accounts WHERE identifier = 'modele'").fetchone()[0]
    rng = random.Random(2026)
    rows = []
    for n in range(LINES):
        account = modele if n < 2000 else rng.choice(ids)
        at = now_ms - rng.randrange(730 * DAY_MS)
        kind = "login_failed" if n % 5 == 0 else "login_succeeded"
        address = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        rows.append((at, account, kind, "member", address, AGENT))
    con.executemany(
        "INSERT INTO audit_events (at, account_id, kind, actor_kind, address, user_agent) VALUES (?, ?, ?, ?, ?, ?)",
        rows)
    con.commit()
    con.close()


def counts(db, now_ms):
    """What the round has still to do: old lines, old failures, addresses to cut."""
    con = sqlite3.connect(db, timeout=30)
    old = con.execute("SELECT COUNT(*) FROM audit_events WHERE at < ?", (now_ms - 365 * DAY_MS,)).fetchone()[0]
    failed = con.execute("SELECT COUNT(*) FROM audit_events WHERE kind = 'login_failed' AND at < ?",
                         (now_ms - DAY_MS,)).fetchone()[0]
    uncut = con.execute("SELECT COUNT(*) FROM audit_events WHERE address_truncated = 0 AND at < ?",
                        (now_ms - 90 * DAY_MS,)).fetchone()[0]
    con.close()
    return old, failed, uncut


def log_in(base):
    """A fresh browser logging "modele" in: the browser, and the POST's duration."""
    browser = requests.Session()
    page = browser.get(f"{base}/login").text
    started = time.perf_counter()
    answer = browser.post(f"{base}/login", allow_redirects=False, data={
        "csrf_token": field(page, "csrf_token"), "identifier": "modele", "password": PASSWORD})
    took = time.perf_counter() - started
    assert answer.headers.get("location") == "/me", (answer.status_code, answer.text[:200])
    return browser, took


def timed(requests_session, url, n):
    took, size = [], 0
    for _ in range(n):
        started = time.perf_counter()
        answer = requests_session.get(url)
        took.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.status_code
        size = len(answer.content)
    return took, size


def main():
    work = tempfile.mkdtemp(prefix="guichet-bench-privacy-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = f"{work}/g.db"
    env = dict(os.environ, GUICHET_DATABASE_URL=f"sqlite://{db}", GUICHET_LISTEN=f"127.0.0.1:{port}",
               GUICHET_PUBLIC_URL=base, GUICHET_MAIL_TRANSPORT=f"file:{work}/outbox", GUICHET_LOG="warn")
    env.pop("GUICHET_CONFIG", None)
    guichet = cli(BIN, env)
    members(guichet, work, MEMBERS, PASSWORD)
    now_ms = int(time.time() * 1000)
    seed(db, now_ms)
    print(f"{MEMBERS} members, {LINES} audit lines over two years; before: old {counts(db, now_ms)[0]}, "
          f"failed past a day {counts(db, now_ms)[1]}, addresses to cut {counts(db, now_ms)[2]}")

    started = time.perf_counter()
    said = guichet("retention").stdout
    print(f"guichet retention (counting): {(time.perf_counter() - started) * 1000:.0f} ms, process included")
    print("  " + "\n  ".join(line for line in said.splitlines() if "AUDIT" in line or "ADDRESSES" in line or "FAILED" in line))

    started = time.perf_counter()
    server = serve(BIN, env, port)
    during, stop = [], threading.Event()

    def log_in_again_and_again():
        while not stop.is_set():
            during.append(log_in(base)[1])

    logins = threading.Thread(target=log_in_again_and_again)
    logins.start()
    while any(counts(db, now_ms)):
        time.sleep(0.05)
    took = time.perf_counter() - started
    stop.set()
    logins.join()
    print(f"first round at start, all of it done: {took:.2f} s after the process started")
    print(f"logins meanwhile: {len(during)}, p50 {percentile(during, 0.5) * 1000:.0f} ms, "
          f"p99 {percentile(during, 0.99) * 1000:.0f} ms")
    after = [log_in(base)[1] for _ in range(40)]
    print(f"logins after it: p50 {percentile(after, 0.5) * 1000:.0f} ms, p99 {percentile(after, 0.99) * 1000:.0f} ms")
    server.terminate()
    server.wait()
    started = time.perf_counter()
    guichet("retention")
    print(f"guichet retention with nothing left: {(time.perf_counter() - started) * 1000:.0f} ms, process included")

    server = serve(BIN, env, port)
    try:
        browser, _ = log_in(base)
        took, size = timed(browser, f"{base}/me/export.json", 50)
        print(f"/me/export.json: p50 {percentile(took, 0.5) * 1000:.1f} ms, p99 {percentile(took, 0.99) * 1000:.1f} ms, "
              f"{size / 1024:.0f} KiB")
        took, size = timed(browser, f"{base}/me/export", 50)
        print(f"/me/export: p50 {percentile(took, 0.5) * 1000:.1f} ms, p99 {percentile(took, 0.99) * 1000:.1f} ms, "
              f"{size / 1024:.0f} KiB")
        print(f"memory: {memory(server.pid)}")
    finally:
        server.terminate()
        server.wait()


main()
