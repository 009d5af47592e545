// The MCP TypeScript SDK's client authorization against tessera (docs/spec.md §8), driven
// by tests/api/mcp.rs. Usage: node mcp.mjs <resource server URL> <redirect URI> [client ID URL]
//
// 1. Calls the resource server without a token: 401 with `resource_metadata` (RFC 9728 §5.1).
// 2. `auth()` with an in-memory OAuthClientProvider: protected-resource metadata, the
//    authorization server's RFC 8414 metadata, then the client ID: open registration
//    (RFC 7591, `none`), or, given a client ID URL, a client ID metadata document. The
//    SDK (1.32.2) uses its own metadata-document path (`clientMetadataUrl`) for https URLs
//    only; the test serves the document over http on loopback (tessera trusts only the
//    system's CAs, and allows loopback http with --client-metadata-allow-loopback), so an
//    http URL is handed to the SDK as the provider's stored client information, and the SDK
//    then registers nothing. Then PKCE and `resource` (RFC 8707). Prints
//    {"authorization_url": ..., "cimd_supported": ...} on one line.
// 3. Reads the callback URL (after login and consent, done by the Rust test) from stdin,
//    and `auth()` again with the code: the token exchange.
// 4. Calls the resource server with the access token; prints the outcome on one line.
import { createInterface } from "node:readline";
import {
  auth,
  extractResourceMetadataUrl,
} from "@modelcontextprotocol/sdk/client/auth.js";

const [serverUrl, redirectUrl, clientIdUrl] = process.argv.slice(2);

class MemoryProvider {
  constructor() {
    this.stored = {};
    if (clientIdUrl && !clientIdUrl.startsWith("https://")) {
      this.stored.client = { client_id: clientIdUrl };
    }
  }
  get clientMetadataUrl() {
    return clientIdUrl && clientIdUrl.startsWith("https://") ? clientIdUrl : undefined;
  }
  saveDiscoveryState(state) {
    this.stored.discovery = state;
  }
  get redirectUrl() {
    return redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: "MCP SDK test client",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    return "mcp-state-1";
  }
  clientInformation() {
    return this.stored.client;
  }
  saveClientInformation(info) {
    this.stored.client = info;
  }
  tokens() {
    return this.stored.tokens;
  }
  saveTokens(tokens) {
    this.stored.tokens = tokens;
  }
  redirectToAuthorization(url) {
    this.stored.authorizationUrl = url.toString();
  }
  saveCodeVerifier(v) {
    this.stored.verifier = v;
  }
  codeVerifier() {
    return this.stored.verifier;
  }
}

const models = `${serverUrl}/v1/models`;
const first = await fetch(models);
if (first.status !== 401) {
  throw new Error(`expected 401 without a token, got ${first.status}`);
}
const resourceMetadataUrl = extractResourceMetadataUrl(first);
if (!resourceMetadataUrl) {
  throw new Error("the 401 carries no resource_metadata");
}

const provider = new MemoryProvider();
const started = await auth(provider, { serverUrl, resourceMetadataUrl });
if (started !== "REDIRECT") {
  throw new Error(`auth() answered ${started}, not REDIRECT`);
}
console.log(
  JSON.stringify({
    authorization_url: provider.stored.authorizationUrl,
    cimd_supported:
      provider.stored.discovery?.authorizationServerMetadata?.client_id_metadata_document_supported ?? null,
  }),
);

const lines = createInterface({ input: process.stdin });
const callback = await new Promise((resolve) => lines.once("line", resolve));
lines.close();
const params = new URL(callback).searchParams;
if (params.get("state") !== "mcp-state-1") {
  throw new Error(`state mismatch in ${callback}`);
}
const code = params.get("code");
if (!code) {
  throw new Error(`no code in ${callback}`);
}
const finished = await auth(provider, {
  serverUrl,
  resourceMetadataUrl,
  authorizationCode: code,
});
if (finished !== "AUTHORIZED") {
  throw new Error(`auth() with the code answered ${finished}`);
}
const token = provider.stored.tokens.access_token;
const call = await fetch(models, { headers: { Authorization: `Bearer ${token}` } });
const payload = JSON.parse(
  Buffer.from(token.split(".")[1], "base64url").toString("utf8"),
);
console.log(
  JSON.stringify({
    status: call.status,
    body: await call.json().catch(() => null),
    aud: payload.aud,
    scope: provider.stored.tokens.scope,
    client: provider.stored.client,
  }),
);
