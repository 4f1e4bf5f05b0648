// panva's openid-client, a strict relying party, against a running guichet: discovery,
// the code flow with PKCE (the member's browser played with fetch and a cookie jar),
// refresh with rotation and replay detection, introspection, revocation, and a
// back-channel logout token checked with jose as Back-Channel Logout 1.0 §2.6 asks.
//
// Run by the Rust test `sso::openid_client_refreshes_revokes_and_checks_a_logout_token`,
// which registers the client and passes what it needs in the environment. Prints one
// line per check; exits non-zero at the first that fails.

import http from 'node:http';
import * as oidc from 'openid-client';
import * as jose from 'jose';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const issuer = env('ISSUER');
const clientId = env('CLIENT_ID');
const redirectUri = env('REDIRECT_URI');
const identifier = env('IDENTIFIER');
const password = env('PASSWORD');
const backchannelPort = Number(env('BACKCHANNEL_PORT'));

const check = (condition, what) => {
  if (!condition) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const expectError = async (call, error, what) => {
  try {
    await call();
  } catch (e) {
    check(e.error === error, `${what} (${e.error ?? e.message})`);
    return;
  }
  check(false, `${what}: no error`);
};

const config = await oidc.discovery(new URL(issuer), clientId, env('CLIENT_SECRET'), undefined, {
  execute: [oidc.allowInsecureRequests],
});
const metadata = config.serverMetadata();
check(metadata.revocation_endpoint && metadata.introspection_endpoint, 'discovery names revocation and introspection');
check(metadata.backchannel_logout_supported === true, 'discovery: back-channel logout');

// The member's browser: fetch, redirects by hand, a cookie jar.
const jar = new Map();
const browse = async (url, init = {}) => {
  const headers = new Headers(init.headers);
  if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
  const response = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const cookie of response.headers.getSetCookie()) {
    const [pair] = cookie.split(';');
    const at = pair.indexOf('=');
    const [name, value] = [pair.slice(0, at), pair.slice(at + 1)];
    if (value === '' || /max-age=0/i.test(cookie)) jar.delete(name);
    else jar.set(name, value);
  }
  return response;
};
const unescape = (html) =>
  html.replace(/&#x([0-9a-f]+);/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#([0-9]+);/g, (_, decimal) => String.fromCodePoint(Number(decimal)))
    .replaceAll('&quot;', '"').replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
const field = (page, name) => {
  const found = page.match(new RegExp(`name="${name}" value="([^"]*)"`));
  return found ? unescape(found[1]) : undefined;
};
const form = (fields) => ({
  method: 'POST',
  body: new URLSearchParams(fields),
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
});

// The code flow: to the callback, logging in on the way when guichet asks.
const signIn = async (scope) => {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  let url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    state,
    nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).href;
  for (let step = 0; step < 6; step++) {
    const response = await browse(url);
    const location = response.headers.get('location');
    if (!location) throw new Error(`no redirect from ${url}: ${response.status}`);
    const next = new URL(location, url);
    if (next.href.startsWith(redirectUri)) {
      return oidc.authorizationCodeGrant(config, next, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
      });
    }
    if (next.pathname === '/login') {
      const page = await (await browse(next.href)).text();
      const posted = await browse(new URL('/login', issuer).href, form({
        csrf_token: field(page, 'csrf_token'),
        identifier,
        password,
        next: field(page, 'next') ?? '',
      }));
      url = new URL(posted.headers.get('location'), issuer).href;
    } else {
      url = next.href;
    }
  }
  throw new Error('too many redirects');
};

// Sign in; the ID token names the session and how the member signed in.
const first = await signIn('openid profile groups');
const claims = first.claims();
check(typeof claims.sid === 'string' && claims.sid.length === 32, 'the ID token carries sid');
check(Array.isArray(claims.amr) && claims.amr.includes('pwd'), 'the ID token carries amr pwd');
check(typeof claims.auth_time === 'number', 'the ID token carries auth_time');
check(typeof first.refresh_token === 'string', 'the code exchange gives a refresh token');

// Refresh rotates; the old token presented again revokes the family.
const rotated = await oidc.refreshTokenGrant(config, first.refresh_token);
check(rotated.refresh_token && rotated.refresh_token !== first.refresh_token, 'a refresh rotates the refresh token');
check(rotated.claims()?.sid === claims.sid, 'the refreshed ID token names the same session');
await expectError(() => oidc.refreshTokenGrant(config, first.refresh_token), 'invalid_grant', 'a replayed refresh token is refused');
await expectError(() => oidc.refreshTokenGrant(config, rotated.refresh_token), 'invalid_grant', 'and its whole family is revoked');

// Introspection and revocation.
const second = await signIn('openid profile');
const active = await oidc.tokenIntrospection(config, second.access_token);
check(active.active === true && active.client_id === clientId && active.username === identifier, 'introspection: an active access token');
const refreshing = await oidc.tokenIntrospection(config, second.refresh_token, { token_type_hint: 'refresh_token' });
check(refreshing.active === true && refreshing.sid === claims.sid, 'introspection: an active refresh token, with its session');
await oidc.tokenRevocation(config, second.refresh_token);
check((await oidc.tokenIntrospection(config, second.refresh_token)).active === false, 'revocation ends the refresh token');
check((await oidc.tokenIntrospection(config, second.access_token)).active === false, 'and the access token issued with it');

// Back-channel logout: the member logs out of guichet; this application is told.
const received = [];
const server = http.createServer((request, response) => {
  let body = '';
  request.on('data', (chunk) => { body += chunk; });
  request.on('end', () => {
    received.push(new URLSearchParams(body).get('logout_token'));
    response.writeHead(200, { 'cache-control': 'no-store' });
    response.end();
  });
});
await new Promise((resolve) => server.listen(backchannelPort, '127.0.0.1', resolve));
const third = await signIn('openid');
const me = await (await browse(new URL('/me', issuer).href)).text();
const out = await browse(new URL('/logout', issuer).href, form({ csrf_token: field(me, 'csrf_token') }));
check(out.status === 303, 'the member logs out of guichet');
for (let i = 0; i < 100 && received.length === 0; i++) await sleep(100);
server.close();
check(received.length === 1, 'one logout token arrives on the back channel');
const keys = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));
const { payload } = await jose.jwtVerify(received[0], keys, {
  issuer: metadata.issuer,
  audience: clientId,
  typ: 'logout+jwt',
  maxTokenAge: '2 minutes',
  requiredClaims: ['iat', 'jti', 'events', 'sid', 'sub'],
});
check(payload.sid === third.claims().sid && payload.sub === third.claims().sub, 'the logout token names the session and the member');
check(typeof payload.events?.['http://schemas.openid.net/event/backchannel-logout'] === 'object', 'the logout token carries the back-channel event');
check(!('nonce' in payload), 'the logout token has no nonce');
await expectError(() => oidc.refreshTokenGrant(config, third.refresh_token), 'invalid_grant', 'the session\'s refresh token died with it');
console.log('done');
