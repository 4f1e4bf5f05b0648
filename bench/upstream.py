#!/usr/bin/env python3
"""Signing in with an upstream provider (Pro Santé Connect's shape) under load.

    bench/upstream.py BIN [MEMBERS]

BIN is a guichet binary (target/release/guichet). The script starts panva's oidc-provider
(.ci/upstream-provider.mjs, `npm ci --prefix .ci` first) as the upstream, guichet on a
fresh SQLite database with the `pro-sante-connect` preset pointing at it, imports MEMBERS
(100) members with their RPPS numbers, then signs each in through the provider, eight
browsers at a time, twice (two minutes apart: one network may begin 120 upstream logins a
minute), and measures:

- the button (`GET /login/upstream/psc`: a state kept, the provider's cached metadata):
  p50/p99;
- the callback (`GET …/callback`: the code exchanged, the ID token and the signed userinfo
  fetched and checked, the link made by the RPPS number on a first login, the session
  opened): p50/p99 on first logins, then again on second logins (the link exists);
- the whole round trip as a member's browser sees it, provider included: logins per second;
- the provider's back-channel logouts: POSTs of a logout token from the provider's own
  logout, p50/p99 of guichet's answer;
- RSS of guichet at the end.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

import requests

from guichet_bench import cli, free_port, memory, percentile, serve

BIN = sys.argv[1]
MEMBERS = int(sys.argv[2]) if len(sys.argv) > 2 else 100
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".ci")


def rpps(n):
    return f"{10000000000 + n}"


def start_provider(port, guichet_base):
    accounts = {f"m{n}": {"SubjectNameID": "8" + rpps(n), "given_name": "Membre", "family_name": str(n)} for n in range(MEMBERS)}
    env = dict(os.environ, PORT=str(port), ACCOUNTS=json.dumps(accounts), MODE="normal", CLIENT_ID="bench",
               CLIENT_SECRET="le-secret-du-banc", REDIRECT_URI=f"{guichet_base}/login/upstream/psc/callback",
               POST_LOGOUT_URI=f"{guichet_base}/login",
               BACKCHANNEL_LOGOUT_URI=f"{guichet_base}/login/upstream/psc/backchannel-logout")
    provider = subprocess.Popen(["node", os.path.join(ROOT, "upstream-provider.mjs")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = provider.stdout.readline()
    if not line.startswith("listening"):
        raise SystemExit(f"the provider did not start: {line!r}")
    # Drained: a closed pipe would stop it at its next notice.
    import threading
    threading.Thread(target=lambda: [None for _ in provider.stdout], daemon=True).start()
    return provider


def sign_in(base, issuer, login, browser=None):
    """One member's round trip: (button seconds, callback seconds, the browser)."""
    browser = browser or requests.Session()
    started = time.perf_counter()
    to_provider = browser.get(f"{base}/login/upstream/psc", allow_redirects=False)
    button = time.perf_counter() - started
    assert to_provider.status_code == 303, (to_provider.status_code, to_provider.text[:300])
    url = to_provider.headers["location"]
    while url.startswith(issuer):
        answer = browser.get(url, allow_redirects=False)
        if answer.status_code == 200:
            answer = browser.post(url, data={"login": login}, allow_redirects=False)
        url = urllib.parse.urljoin(url, answer.headers["location"])
    started = time.perf_counter()
    back = browser.get(url, allow_redirects=False)
    callback = time.perf_counter() - started
    assert back.status_code == 303 and back.headers["location"].endswith("/me"), (back.status_code, back.text[:300])
    return button, callback, browser


def round_of(base, issuer, logins, browsers=None):
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(sign_in, base, issuer, login, (browsers or {}).get(login)) for login in logins]
        results = [job.result() for job in jobs]
    return results, time.perf_counter() - started


def ms(values, p):
    return f"{percentile(values, p) * 1000:.1f} ms"


def main():
    work = tempfile.mkdtemp(prefix="guichet-bench-upstream-")
    port, provider_port = free_port(), free_port()
    base, issuer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{provider_port}"
    with open(os.path.join(work, "psc-secret"), "w") as f:
        f.write("le-secret-du-banc\n")
    with open(os.path.join(work, "guichet.toml"), "w") as f:
        f.write(f'[[upstream]]\nid = "psc"\npreset = "pro-sante-connect"\nissuer = "{issuer}"\n'
                f'client_id = "bench"\nclient_secret_file = "psc-secret"\nsigned_userinfo = true\n')
    env = dict(os.environ, GUICHET_DATABASE_URL=f"sqlite://{work}/g.db", GUICHET_LISTEN=f"127.0.0.1:{port}",
               GUICHET_PUBLIC_URL=base, GUICHET_MAIL_TRANSPORT=f"file:{work}/outbox", GUICHET_LOG="warn",
               GUICHET_CONFIG=os.path.join(work, "guichet.toml"), GUICHET_ADDRESS_THROTTLE_FAILURES="1000000")
    guichet = cli(BIN, env)
    guichet("migrate")
    csv = os.path.join(work, "members.csv")
    with open(csv, "w") as f:
        f.write("identifier;email;given_name;family_name;rpps\n")
        for n in range(MEMBERS):
            f.write(f"m{n};m{n}@chu.example.fr;Membre;{n};{rpps(n)}\n")
    guichet("member", "import", csv)
    server = serve(BIN, env, port)
    provider = start_provider(provider_port, base)
    try:
        logins = [f"m{n}" for n in range(MEMBERS)]
        first, first_seconds = round_of(base, issuer, logins)
        browsers = {login: result[2] for login, result in zip(logins, first)}
        time.sleep(125)
        again, again_seconds = round_of(base, issuer, logins, browsers)
        print(f"members: {MEMBERS}, eight browsers at a time")
        buttons = [r[0] for r in first + again]
        print(f"button: p50 {ms(buttons, 0.5)}, p99 {ms(buttons, 0.99)}")
        print(f"callback, first login (link by RPPS): p50 {ms([r[1] for r in first], 0.5)}, p99 {ms([r[1] for r in first], 0.99)}")
        print(f"callback, linked: p50 {ms([r[1] for r in again], 0.5)}, p99 {ms([r[1] for r in again], 0.99)}")
        print(f"round trips, provider included: {MEMBERS / first_seconds:.1f}/s first, {MEMBERS / again_seconds:.1f}/s linked")

        # The provider's own logout, confirmed in each browser: it POSTs a logout token to
        # guichet; its answer times are measured from guichet's side (the provider's POST).
        def provider_logout(login):
            browser = browsers[login]
            page = browser.get(f"{issuer}/session/end").text
            xsrf = re.search(r'name="xsrf" value="([^"]+)"', page).group(1)
            started = time.perf_counter()
            browser.post(f"{issuer}/session/end/confirm", data={"xsrf": xsrf, "logout": "yes"}, allow_redirects=False)
            took = time.perf_counter() - started
            ended = browser.get(f"{base}/me", allow_redirects=False).status_code == 303
            return took, ended
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(provider_logout, logins))
        print(f"provider logout with its back channel to guichet: p50 {ms([o[0] for o in outs], 0.5)}, "
              f"p99 {ms([o[0] for o in outs], 0.99)}; sessions ended here: {sum(o[1] for o in outs)}/{MEMBERS}")
        print(f"guichet: {memory(server.pid)}")
    finally:
        server.kill()
        provider.kill()


main()
