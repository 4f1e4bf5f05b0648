#!/usr/bin/env python3
"""Single sign-on under load: refresh tokens and logouts that reach the applications.

    bench/sso.py BIN [SECONDS]

BIN is a guichet binary (target/release/guichet). The script starts it on a fresh SQLite
database, registers two applications whose back channels are HTTP servers of its own
(one answers at once, one takes a second, as a slow application would), signs members
in to both, then measures:

- refresh: eight families rotated one after the other each (a refresh token works
  once), for SECONDS (10): refreshes per second, and p50/p99 of one refresh;
- logout: 200 members each click "Se déconnecter": p50/p99 of the POST /logout (it
  must not wait on the applications) and of the time until the fast application hears
  of it (the slow one's second is in flight meanwhile);
- RSS of guichet at the end (VmHWM, VmRSS).
"""

import http.server
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

import requests

from guichet_bench import cli, field, free_port, memory, percentile, serve

BIN = sys.argv[1]
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
PASSWORD = "cheval agrafe pile 2026"
CALLBACK = "https://wiki.example.org/cb"
MEMBERS = 200

heard = {}
heard_lock = threading.Lock()


class BackChannel(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        token = urllib.parse.parse_qs(self.rfile.read(length).decode()).get("logout_token", [""])[0]
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        else:
            import base64
            import json
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
            with heard_lock:
                heard[claims["sid"]] = time.monotonic()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def start_back_channel():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BackChannel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def sign_in(base, identifier, clients):
    """A browser of its own, signed in to every client: the browser, the ID token's sid,
    and each client's refresh token."""
    browser = requests.Session()
    page = browser.get(f"{base}/login").text
    browser.post(f"{base}/login", data={"csrf_token": field(page, "csrf_token"), "identifier": identifier, "password": PASSWORD}, allow_redirects=False)
    refresh, sid = {}, None
    for client_id, secret in clients:
        query = urllib.parse.urlencode({"client_id": client_id, "response_type": "code", "scope": "openid", "redirect_uri": CALLBACK, "state": "s"})
        back = browser.get(f"{base}/oidc/authorize?{query}", allow_redirects=False).headers["location"]
        code = urllib.parse.parse_qs(urllib.parse.urlparse(back).query)["code"][0]
        tokens = requests.post(f"{base}/oidc/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}, auth=(client_id, secret)).json()
        refresh[client_id] = tokens["refresh_token"]
        import base64
        import json
        sid = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))["sid"]
    return browser, sid, refresh


def main():
    work = tempfile.mkdtemp(prefix="guichet-bench-sso-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, GUICHET_DATABASE_URL=f"sqlite://{work}/g.db", GUICHET_LISTEN=f"127.0.0.1:{port}", GUICHET_PUBLIC_URL=base, GUICHET_MAIL_TRANSPORT=f"file:{work}/outbox", GUICHET_LOG="warn")
    env.pop("GUICHET_CONFIG", None)
    guichet = cli(BIN, env)
    channel = start_back_channel()
    clients = []
    for name, path in (("Wiki", "fast"), ("Cloud", "slow")):
        said = guichet("client", "add", name, "--redirect-uri", CALLBACK, "--backchannel-logout-uri", f"http://127.0.0.1:{channel}/{path}").stdout
        clients.append((re.search(r"client_id:\s+(\S+)", said).group(1), re.search(r"client_secret:\s+(\S+)", said).group(1)))
    csv = os.path.join(work, "members.csv")
    hashed = guichet("member", "add", "modele", "--email", "modele@chu.example.fr", "--password-stdin", stdin=PASSWORD + "\n")
    assert hashed.returncode == 0
    server = serve(BIN, env, port)
    try:
        # The members: one added for real (its password hashed), the others imported with its hash.
        import sqlite3
        phc = sqlite3.connect(f"{work}/g.db").execute("SELECT password_hash FROM accounts WHERE identifier = 'modele'").fetchone()[0]
        with open(csv, "w") as f:
            f.write("identifier,email,name,role,groups,password_hash\n")
            for n in range(MEMBERS):
                f.write(f'm{n},m{n}@chu.example.fr,Membre {n},member,,"{phc}"\n')
        guichet("member", "import", csv)
        sessions = [sign_in(base, f"m{n}", clients) for n in range(MEMBERS)]

        # Refresh: eight families, each rotated one refresh after the other.
        wiki_id, wiki_secret = clients[0]
        latencies, lock, stop = [], threading.Lock(), time.monotonic() + SECONDS

        def rotate(token):
            http_session = requests.Session()
            while time.monotonic() < stop:
                started = time.perf_counter()
                answer = http_session.post(f"{base}/oidc/token", data={"grant_type": "refresh_token", "refresh_token": token}, auth=(wiki_id, wiki_secret))
                elapsed = time.perf_counter() - started
                assert answer.status_code == 200, answer.text
                token = answer.json()["refresh_token"]
                with lock:
                    latencies.append(elapsed)

        threads = [threading.Thread(target=rotate, args=(sessions[n][2][wiki_id],)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"refresh: {len(latencies) / SECONDS:.0f}/s over 8 families, p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms")

        # Logout: each member clicks "Se déconnecter" once, eight at a time.
        posted, told, clicked = [], [], {}

        def log_out(batch):
            for browser, sid, _ in batch:
                page = browser.get(f"{base}/me").text
                started = time.perf_counter()
                clicked[sid] = time.monotonic()
                answer = browser.post(f"{base}/logout", data={"csrf_token": field(page, "csrf_token")}, allow_redirects=False)
                posted.append(time.perf_counter() - started)
                assert answer.status_code == 303

        threads = [threading.Thread(target=log_out, args=(sessions[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(heard) < MEMBERS:
            time.sleep(0.05)
        told = [heard[sid] - clicked[sid] for sid in clicked if sid in heard]
        print(f"logout: POST /logout p50 {percentile(posted, 0.5) * 1000:.1f} ms, p99 {percentile(posted, 0.99) * 1000:.1f} ms; "
              f"the fast application told {len(told)}/{MEMBERS}, p50 {percentile(told, 0.5) * 1000:.0f} ms, p99 {percentile(told, 0.99) * 1000:.0f} ms after the click")
        print(f"memory: {memory(server.pid)}")
    finally:
        server.terminate()
        server.wait()


main()
