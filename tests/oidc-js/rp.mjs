// A relying party built on openid-client, against a real `grantd serve` (tests/oidc_libs.rs
// starts it and passes its address and a registered client in the environment). It does what
// an application does: discovery, the code flow with PKCE and a nonce, ID token validation
// against the published JWKS, userinfo; and it shows that the library refuses a tampered, an
// expired and a wrong-audience ID token. The browser's part (sign-in, consent) is driven over
// HTTP with the page's own forms. Prints one line per check; exits non-zero on the first failure.

import * as client from 'openid-client';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const issuer = env('GRANTD_ISSUER');
const redirectUri = env('REDIRECT_URI');
const email = env('USER_EMAIL');
const password = env('USER_PASSWORD');
const a = { id: env('CLIENT_ID'), secret: env('CLIENT_SECRET') };
const b = { id: env('OTHER_CLIENT_ID'), secret: env('OTHER_CLIENT_SECRET') };

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function discover(who, metadata = {}) {
  const config = await client.discovery(new URL(issuer), who.id, { client_secret: who.secret, ...metadata }, undefined, {
    execute: [client.allowInsecureRequests],
  });
  // Verify the ID token's signature against the JWKS even though it came straight from the
  // token endpoint (OIDC Core §3.1.3.7 would allow skipping that).
  client.enableNonRepudiationChecks(config);
  return config;
}

// ---- a browser, over HTTP: cookies, the login form, the consent form ----------------------

const jar = new Map();

async function browse(url, init = {}) {
  const headers = new Headers(init.headers ?? {});
  if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
  const response = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const at = pair.indexOf('=');
    jar.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
  }
  return response;
}

/** HTML character references as template engines write them (`&#38;`, `&#x26;`, `&amp;`). */
const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const unescape = (s) =>
  s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref) => {
    if (ref[0] !== '#') return named[ref.toLowerCase()] ?? whole;
    const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    return String.fromCodePoint(code);
  });

/** The hidden fields of the form posting to `action`. */
function hiddenFields(html, action) {
  const start = html.indexOf(`action="${action}"`);
  if (start < 0) throw new Error(`no form for ${action} in: ${html.slice(0, 500)}`);
  const form = html.slice(start, html.indexOf('</form>', start));
  const fields = {};
  for (const [, name, value] of form.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    fields[name] = unescape(value);
  }
  return fields;
}

/** Signs in and consents as needed; the redirect to the client, with the code. */
async function authorize(url) {
  let response = await browse(url);
  for (let hop = 0; hop < 8; hop++) {
    const location = response.headers.get('location');
    if (location) {
      const next = new URL(location, issuer);
      if (next.href.startsWith(redirectUri)) return next;
      response = await browse(next);
      continue;
    }
    const html = await response.text();
    if (html.includes('action="/signin"')) {
      const fields = { ...hiddenFields(html, '/signin'), email, password };
      response = await browse(new URL('/signin', issuer), { method: 'POST', body: new URLSearchParams(fields) });
    } else if (html.includes('action="/oauth/v2/auth/consent"')) {
      const fields = { ...hiddenFields(html, '/oauth/v2/auth/consent'), decision: 'accept' };
      response = await browse(new URL('/oauth/v2/auth/consent', issuer), { method: 'POST', body: new URLSearchParams(fields) });
    } else {
      throw new Error(`unexpected page ${response.status}: ${html.slice(0, 500)}`);
    }
  }
  throw new Error('too many hops');
}

async function codeFlow(config, extra = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    ...extra,
  });
  const callback = await authorize(url);
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  return { tokens, nonce };
}

/** What the library says about a refusal, with its cause. */
const reason = (e) => `${e.message} ${e.cause?.message ?? ''}`;

/** `work` must fail; the library's error is returned. */
async function refused(work, what) {
  try {
    await work();
  } catch (e) {
    console.log(`ok: ${what} is refused (${e.code ?? e.name}: ${reason(e)})`);
    return e;
  }
  throw new Error(`check failed: ${what} was accepted`);
}

/** The token endpoint's answers with `change` applied to their id_token. */
function rewriteIdToken(config, change) {
  config[client.customFetch] = async (url, options) => {
    const response = await fetch(url, options);
    if (!String(url).endsWith('/oauth/v2/token')) return response;
    const body = await response.json();
    body.id_token = change(body.id_token);
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    return new Response(JSON.stringify(body), { status: response.status, headers });
  };
}

// ---- the checks -----------------------------------------------------------------------------

const configA = await discover(a);
const metadata = configA.serverMetadata();
check(metadata.issuer === issuer, `discovery names the issuer ${issuer}`);
check(metadata.jwks_uri === `${issuer}/oauth/v2/keys`, 'discovery names the JWKS');

const { tokens, nonce } = await codeFlow(configA, { access_type: 'offline', prompt: 'consent' });
const claims = tokens.claims();
check(claims.nonce === nonce, 'the ID token carries the nonce');
check(claims.aud === a.id && claims.iss === issuer, 'aud and iss are the client and the issuer');
check(claims.email === email && claims.email_verified === true, 'email scope claims');
check(typeof claims.auth_time === 'number', 'auth_time');
check(typeof tokens.refresh_token === 'string', 'a refresh token for access_type=offline');

const info = await client.fetchUserInfo(configA, tokens.access_token, claims.sub);
check(info.sub === claims.sub && info.email === email, 'userinfo answers for the same subject');

const refreshed = await client.refreshTokenGrant(configA, tokens.refresh_token);
check(refreshed.claims()?.sub === claims.sub, 'the refresh grant returns a fresh, valid ID token');

// Client B's genuine ID token, to present to A.
const configB = await discover(b);
const forB = (await codeFlow(configB)).tokens.id_token;

const tampered = await discover(a);
rewriteIdToken(tampered, (jwt) => {
  const [header, payload, signature] = jwt.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url'));
  claims.email = 'mallory@example.com';
  return [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
});
const forged = await refused(() => client.refreshTokenGrant(tampered, tokens.refresh_token), 'a tampered ID token');
check(/signature/.test(reason(forged)), 'the refusal names the signature');

// The relying party's clock two hours ahead: the ID token it is given has expired.
const late = await discover(a, { [client.clockSkew]: 2 * 3600 });
const expired = await refused(() => client.refreshTokenGrant(late, tokens.refresh_token), 'an expired ID token');
check(/"exp"/.test(reason(expired)), 'the refusal names the expiry');

const wrongAudience = await discover(a);
rewriteIdToken(wrongAudience, () => forB);
const audience = await refused(
  () => client.refreshTokenGrant(wrongAudience, tokens.refresh_token),
  'an ID token for another client',
);
check(/"aud"/.test(reason(audience)), 'the refusal names the audience');

console.log('openid-client: all checks passed');
