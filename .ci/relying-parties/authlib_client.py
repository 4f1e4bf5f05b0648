"""Authlib (requests' OAuth2Session and its jose), a Python relying party we did not
write, against a running guichet: the authorization request POSTed as a form, the code
flow with PKCE (the member's browser played with a requests session), the ID token
checked against /oidc/jwks, refresh with rotation and replay detection, introspection,
revocation, and a back-channel logout token checked on a server of its own.

Run by the Rust test `sso::authlib_posts_refreshes_revokes_and_checks_a_logout_token`,
which registers the client and passes what it needs in the environment. Prints one line
per check; exits non-zero at the first that fails.
"""

import html
import http.server
import os
import re
import sys
import threading
import time
import urllib.parse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc7636 import create_s256_code_challenge

ISSUER = os.environ["ISSUER"]
CLIENT_ID = os.environ["CLIENT_ID"]
REDIRECT_URI = os.environ["REDIRECT_URI"]
IDENTIFIER = os.environ["IDENTIFIER"]
PASSWORD = os.environ["PASSWORD"]
BACKCHANNEL_PORT = int(os.environ["BACKCHANNEL_PORT"])


def check(condition, what):
    if not condition:
        print(f"failed: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def field(page, name):
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


metadata = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10).json()
check(metadata["issuer"] == ISSUER, "discovery names the issuer")
keys = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
client = OAuth2Session(
    CLIENT_ID,
    os.environ["CLIENT_SECRET"],
    scope="openid profile groups",
    redirect_uri=REDIRECT_URI,
    token_endpoint_auth_method="client_secret_basic",
    revocation_endpoint_auth_method="client_secret_basic",
)
browser = requests.Session()


def sign_in(post=False):
    """The code flow to the callback (logging in when guichet asks): the tokens."""
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"],
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    if post:
        # The same request as a form (OpenID Connect Core 1.0 §3.1.2.1).
        endpoint, query = url.split("?", 1)
        response = browser.post(endpoint, data=dict(urllib.parse.parse_qsl(query)), allow_redirects=False)
        check(response.status_code == 303, "POST /oidc/authorize is sent on")
        url = urllib.parse.urljoin(ISSUER, response.headers["location"])
    for _ in range(6):
        response = browser.get(url, allow_redirects=False)
        location = urllib.parse.urljoin(url, response.headers.get("location", ""))
        if location.startswith(REDIRECT_URI):
            token = client.fetch_token(
                metadata["token_endpoint"], authorization_response=location, code_verifier=verifier, state=state
            )
            claims = jwt.decode(
                token["id_token"],
                keys,
                claims_options={"iss": {"essential": True, "value": ISSUER}, "aud": {"essential": True, "value": CLIENT_ID}, "nonce": {"essential": True, "value": nonce}},
            )
            claims.validate()
            return token, claims
        if urllib.parse.urlparse(location).path == "/login":
            page = browser.get(location).text
            form = {
                "csrf_token": field(page, "csrf_token"),
                "identifier": IDENTIFIER,
                "password": PASSWORD,
                "next": field(page, "next") or "",
            }
            posted = browser.post(f"{ISSUER}/login", data=form, allow_redirects=False)
            url = urllib.parse.urljoin(ISSUER, posted.headers["location"])
        else:
            url = location
    check(False, "the code flow ends at the callback")


token, claims = sign_in(post=True)
check(len(claims["sid"]) == 32 and claims["amr"] == ["pwd"], "the ID token carries sid and amr")
check("refresh_token" in token, "the code exchange gives a refresh token")

refreshed = client.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
check(refreshed["refresh_token"] != token["refresh_token"], "a refresh rotates the refresh token")
replay = requests.post(
    metadata["token_endpoint"],
    data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    auth=(CLIENT_ID, os.environ["CLIENT_SECRET"]),
    timeout=10,
)
check(replay.status_code == 400 and replay.json()["error"] == "invalid_grant", "a replayed refresh token is refused")
again = requests.post(
    metadata["token_endpoint"],
    data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
    auth=(CLIENT_ID, os.environ["CLIENT_SECRET"]),
    timeout=10,
)
check(again.status_code == 400, "and its family is revoked")

token, _ = sign_in()
active = client.introspect_token(metadata["introspection_endpoint"], token=token["access_token"]).json()
check(active["active"] and active["client_id"] == CLIENT_ID, "introspection: an active access token")
revoked = client.revoke_token(metadata["revocation_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token")
check(revoked.status_code == 200, "revocation answers 200")
gone = client.introspect_token(metadata["introspection_endpoint"], token=token["refresh_token"]).json()
check(gone == {"active": False}, "the revoked refresh token is no longer active")

received = []


class BackChannel(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = urllib.parse.parse_qs(self.rfile.read(length).decode())
        received.append(body.get("logout_token", [""])[0])
        self.send_response(200)
        self.send_header("cache-control", "no-store")
        self.end_headers()

    def log_message(self, *_):
        pass


server = http.server.HTTPServer(("127.0.0.1", BACKCHANNEL_PORT), BackChannel)
threading.Thread(target=server.serve_forever, daemon=True).start()
token, claims = sign_in()
page = browser.get(f"{ISSUER}/me").text
out = browser.post(f"{ISSUER}/logout", data={"csrf_token": field(page, "csrf_token")}, allow_redirects=False)
check(out.status_code == 303, "the member logs out of guichet")
for _ in range(100):
    if received:
        break
    time.sleep(0.1)
server.shutdown()
check(len(received) == 1, "one logout token arrives on the back channel")
header = jwt.decode(received[0], keys).header
check(header.get("typ") == "logout+jwt", "the logout token is typed logout+jwt")
logout = jwt.decode(
    received[0],
    keys,
    claims_options={"iss": {"essential": True, "value": ISSUER}, "aud": {"essential": True, "value": CLIENT_ID}, "iat": {"essential": True}, "jti": {"essential": True}},
)
logout.validate(leeway=60)
check(logout["sid"] == claims["sid"] and logout["sub"] == claims["sub"], "the logout token names the session and the member")
check("http://schemas.openid.net/event/backchannel-logout" in logout["events"], "it carries the back-channel event")
check("nonce" not in logout, "it has no nonce")
dead = requests.post(
    metadata["token_endpoint"],
    data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    auth=(CLIENT_ID, os.environ["CLIENT_SECRET"]),
    timeout=10,
)
check(dead.status_code == 400, "the session's refresh token died with it")
print("done", flush=True)
