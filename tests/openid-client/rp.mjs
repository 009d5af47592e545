// A relying party built on panva's openid-client (OpenID-certified), run against a live
// tessera by tests/api/openid_client.rs. Protocol on stdout/stdin, one JSON object a line:
//   argv: <issuer> <client_id> <client_secret> <redirect_uri> <scope>
//   out:  {"authorization_url": "..."}           (the test drives the login and consent pages)
//   in:   the callback URL the browser was sent to
//   out:  {"claims": {...}, "userinfo": {...}, "scope": "..."}   or exit 1 with the error
import * as client from 'openid-client';
import * as readline from 'node:readline';

const [issuer, clientId, clientSecret, redirectUri, scope] = process.argv.slice(2);

async function main() {
  // OpenID Connect Discovery over plain HTTP: the test server listens on 127.0.0.1.
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, {
    execute: [client.allowInsecureRequests],
  });
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  console.log(JSON.stringify({ authorization_url: url.href }));
  const rl = readline.createInterface({ input: process.stdin });
  const callback = await new Promise((resolve) => rl.once('line', resolve));
  rl.close();
  // Checks state, iss (RFC 9207), the code exchange with PKCE, and the ID token: signature
  // against the JWKS, iss, aud, exp, iat, nonce, azp and at_hash.
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  console.log(JSON.stringify({ claims, userinfo, scope: tokens.scope }));
}

main().catch((e) => {
  console.error(`openid-client failed: ${e?.name}: ${e?.message} ${e?.code ?? ''} ${JSON.stringify(e?.cause ?? null)}`);
  process.exit(1);
});
