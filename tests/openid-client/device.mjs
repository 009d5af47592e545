// The device flow (RFC 8628) with panva's openid-client against a live tessera, run by
// tests/api/openid_client.rs. One JSON object a line on stdout:
//   argv: <issuer> <client_id> <scope>      (a public client: no secret)
//   out:  {"user_code": "...", "verification_uri_complete": "..."}  (the test approves at /device)
//   out:  {"claims": {...}, "scope": "...", "refresh_token": true|false}   or exit 1 with the error
import * as client from 'openid-client';

const [issuer, clientId, scope] = process.argv.slice(2);

async function main() {
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
  const response = await client.initiateDeviceAuthorization(config, { scope });
  console.log(JSON.stringify({
    user_code: response.user_code,
    verification_uri_complete: response.verification_uri_complete,
  }));
  // Polls every `interval` seconds, honouring authorization_pending and slow_down, and
  // validates the ID token (iss, aud, exp, iat, azp).
  const tokens = await client.pollDeviceAuthorizationGrant(config, response);
  console.log(JSON.stringify({
    claims: tokens.claims(),
    scope: tokens.scope,
    refresh_token: typeof tokens.refresh_token === 'string',
  }));
}

main().catch((e) => {
  console.error(`openid-client failed: ${e?.name}: ${e?.message} ${e?.code ?? ''} ${JSON.stringify(e?.cause ?? null)}`);
  process.exit(1);
});
