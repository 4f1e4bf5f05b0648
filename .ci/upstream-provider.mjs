// panva's oidc-provider (an OpenID Certified provider) as the upstream identity provider
// of guichet's tests, shaped like Pro Santé Connect: the `scope_all` scope, `acr`
// `eidas1`, the national identifier in the userinfo's `SubjectNameID`, a signed (JWT)
// userinfo, PKCE required, RP-initiated and back-channel logout.
//
// Started by the Rust tests (`upstream.rs`), one provider per test, configured by the
// environment; prints `listening URL` once it answers. Its login page is a plain form
// whose `login` field names the account (a key of ACCOUNTS), as a test or a browser
// types it.
//
// MODE changes one thing, to play an attacker or a faulty provider:
//   tamper   the token endpoint's ID token has its signature altered;
//   nonce    the authorization request reaches the provider with another nonce;
//   acr      the login is made at level `eidas0`, not the one asked.

import http from 'node:http';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const port = Number(env('PORT'));
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(env('ACCOUNTS'));
const mode = env('MODE', 'normal');

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'upstream-test', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env('CLIENT_ID'),
      client_secret: env('CLIENT_SECRET'),
      redirect_uris: [env('REDIRECT_URI')],
      post_logout_redirect_uris: [env('POST_LOGOUT_URI')],
      backchannel_logout_uri: env('BACKCHANNEL_LOGOUT_URI'),
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
      userinfo_signed_response_alg: 'RS256',
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: ['upstream-test-cookie-key'] },
  claims: {
    openid: ['sub'],
    scope_all: ['SubjectNameID', 'given_name', 'family_name', 'preferred_username'],
  },
  acrValues: ['eidas1', 'eidas0'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    jwtUserinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // Its calls out (the back-channel logout) go to guichet on this machine: a loopback
  // address, which its protection against requests to private networks would refuse.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  async findAccount(ctx, sub) {
    const person = accounts[sub];
    if (!person) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: person.SubjectNameID, ...person };
      },
    };
  },
});

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const readForm = (req) =>
  new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });

provider.use(async (ctx, next) => {
  if (mode === 'nonce' && ctx.path === '/auth' && ctx.query.nonce) {
    const query = new URLSearchParams(ctx.querystring);
    query.set('nonce', 'not-the-nonce-guichet-sent');
    ctx.querystring = query.toString();
  }
  const interaction = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (interaction && ctx.method === 'GET') {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    ctx.type = 'html';
    ctx.body = `<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Fournisseur d'identité de test</title></head>
<body><main><h1>Fournisseur d'identité de test</h1>
<form method="post" action="/interaction/${escape(details.uid)}">
<label for="login">Compte</label> <input id="login" name="login" autofocus>
<button type="submit">S'identifier</button></form></main></body></html>`;
    return;
  }
  if (interaction && ctx.method === 'POST') {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const form = await readForm(ctx.req);
    const accountId = form.get('login') ?? '';
    if (!accounts[accountId]) {
      ctx.status = 400;
      ctx.body = 'unknown account';
      return;
    }
    const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    const acr = mode === 'acr' ? 'eidas0' : 'eidas1';
    const result = { login: { accountId, acr, amr: ['mfa'] }, consent: { grantId } };
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.respond = false;
    return;
  }
  await next();
  if (mode === 'tamper' && ctx.path === '/token' && ctx.body && ctx.body.id_token) {
    const [header, payload, signature] = ctx.body.id_token.split('.');
    const flipped = (signature[5] === 'A' ? 'B' : 'A');
    ctx.body = { ...ctx.body, id_token: `${header}.${payload}.${signature.slice(0, 5)}${flipped}${signature.slice(6)}` };
  }
});

// What goes wrong shows on the test's standard error.
provider.on('backchannel.error', (ctx, error, client) => console.error(`back-channel logout to ${client.clientId}: ${error} ${error.cause ?? ""}`));
provider.on('server_error', (ctx, error) => console.error(`server error: ${error}`));

const server = http.createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
