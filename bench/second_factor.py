#!/usr/bin/env python3
"""Logins with a second factor, under load.

    bench/second_factor.py BIN [MEMBERS]

BIN is a guichet binary (target/release/guichet). The script starts it on a fresh SQLite
database with MEMBERS (200) members, each of whom turns on a phone app's codes in Mon
espace (the secret read off the page, the code computed by pyotp), then measures, eight
members at a time, each member logging in once with the password and then the code:

- logins with two factors per second;
- p50/p99 of the password step (POST /login: one Argon2id) and of the code step (POST
  /login/second-factor: no hash, one unit of work that holds the account);
- RSS of guichet at the end (VmRSS, VmHWM).
"""

import os
import re
import sqlite3
import sys
import tempfile
import threading
import time

import pyotp
import requests

from guichet_bench import cli, field, free_port, members, memory, percentile, serve

BIN = sys.argv[1]
MEMBERS = int(sys.argv[2]) if len(sys.argv) > 2 else 200
PASSWORD = "cheval agrafe pile 2026"


def log_in(base, identifier):
    """A browser of its own, past the password: the browser and the POST's duration."""
    browser = requests.Session()
    page = browser.get(f"{base}/login").text
    started = time.perf_counter()
    answer = browser.post(f"{base}/login", data={"csrf_token": field(page, "csrf_token"), "identifier": identifier, "password": PASSWORD}, allow_redirects=False)
    return browser, answer, time.perf_counter() - started


def enrol(base, identifier):
    browser, answer, _ = log_in(base, identifier)
    assert answer.headers["location"] == "/me", answer.headers
    page = browser.get(f"{base}/me/second-factor").text
    secret = re.search(r'id="totp-secret">([^<]*)<', page).group(1).replace(" ", "")
    code = pyotp.TOTP(secret).now()
    confirmed = browser.post(f"{base}/me/second-factor", data={"csrf_token": field(page, "csrf_token"), "code": code})
    assert confirmed.status_code == 200, confirmed.text
    return secret


def main():
    work = tempfile.mkdtemp(prefix="guichet-bench-2fa-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, GUICHET_DATABASE_URL=f"sqlite://{work}/g.db", GUICHET_LISTEN=f"127.0.0.1:{port}", GUICHET_PUBLIC_URL=base, GUICHET_MAIL_TRANSPORT=f"file:{work}/outbox", GUICHET_LOG="warn")
    env.pop("GUICHET_CONFIG", None)
    guichet = cli(BIN, env)
    members(guichet, work, MEMBERS, PASSWORD)
    server = serve(BIN, env, port)
    try:
        secrets = {f"m{n}": enrol(base, f"m{n}") for n in range(MEMBERS)}
        # A code works once per step: the measured logins use the next step's code, which
        # the one step of skew accepts, and which no enrolment used.
        time.sleep(1)
        passwords, codes, lock = [], [], threading.Lock()

        def two_steps(identifiers):
            for identifier in identifiers:
                browser, answer, password_took = log_in(base, identifier)
                assert answer.headers["location"] == "/login/second-factor", answer.headers
                code = pyotp.TOTP(secrets[identifier]).at(time.time() + 30)
                token = field(browser.get(f"{base}/login").text, "csrf_token")
                started = time.perf_counter()
                done = browser.post(f"{base}/login/second-factor", data={"csrf_token": token, "code": code}, allow_redirects=False)
                code_took = time.perf_counter() - started
                assert done.headers.get("location") == "/me", (done.status_code, done.text[:300])
                with lock:
                    passwords.append(password_took)
                    codes.append(code_took)

        names = list(secrets)
        threads = [threading.Thread(target=two_steps, args=(names[i::8],)) for i in range(8)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - started
        print(f"logins with a code: {len(codes) / took:.0f}/s ({len(codes)} in {took:.1f} s, 8 at a time)")
        print(f"password step: p50 {percentile(passwords, 0.5) * 1000:.1f} ms, p99 {percentile(passwords, 0.99) * 1000:.1f} ms")
        print(f"code step: p50 {percentile(codes, 0.5) * 1000:.1f} ms, p99 {percentile(codes, 0.99) * 1000:.1f} ms")
        print(f"memory: {memory(server.pid)}")
    finally:
        server.terminate()
        server.wait()


main()
