// The RFC 8628 device flow as an application using openid-client 6 runs it against grantd:
// RFC 8414 discovery, the device authorization request, then polling until the user has
// answered at the verification page (which tests/device_js.rs drives over HTTP meanwhile).
// Prints one JSON line per step on stdout: {"step":"authorized",...} when the codes are in,
// then {"step":"tokens",...} or {"step":"error",...}.
//
// Usage: node device.mjs ISSUER CLIENT_ID CLIENT_SECRET SCOPE
import * as client from 'openid-client';

const [issuer, clientId, clientSecret, scope] = process.argv.slice(2);

function say(line) {
  process.stdout.write(JSON.stringify(line) + '\n');
}

try {
  const config = await client.discovery(
    new URL(issuer),
    clientId,
    clientSecret,
    client.ClientSecretBasic(clientSecret),
    // grantd publishes RFC 8414 metadata; the test server speaks plain HTTP on loopback.
    { algorithm: 'oauth2', execute: [client.allowInsecureRequests] },
  );
  const metadata = config.serverMetadata();
  const authorization = await client.initiateDeviceAuthorization(config, {
    scope,
    access_type: 'offline',
  });
  say({
    step: 'authorized',
    device_authorization_endpoint: metadata.device_authorization_endpoint,
    user_code: authorization.user_code,
    verification_uri: authorization.verification_uri,
    verification_uri_complete: authorization.verification_uri_complete,
    expires_in: authorization.expires_in,
    interval: authorization.interval,
  });
  const tokens = await client.pollDeviceAuthorizationGrant(config, authorization);
  say({
    step: 'tokens',
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    token_type: tokens.token_type,
    scope: tokens.scope,
    expires_in: tokens.expires_in,
  });
} catch (error) {
  say({ step: 'error', name: error?.name, code: error?.code, error: error?.error, message: String(error?.message ?? error) });
  process.exitCode = 1;
}
