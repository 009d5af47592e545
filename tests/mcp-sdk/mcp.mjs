// The MCP TypeScript SDK as an MCP client with nothing pre-registered, against tessera
// (docs/spec.md §8) and the SDK-built MCP server of server.mjs, driven by tests/api/mcp.rs.
// Usage: node mcp.mjs <MCP server URL> <redirect URI> [client ID URL]
//
// 1. An SDK `Client` connects over `StreamableHTTPClientTransport` with an in-memory
//    OAuthClientProvider as its `authProvider`. The server's 401 carries
//    `resource_metadata` (RFC 9728 §5.1); the transport's own flow (`auth()`) reads that
//    protected-resource metadata, the authorization server's RFC 8414 metadata, then gets a
//    client ID: open registration (RFC 7591, `none`), or, given a client ID URL (https), the
//    SDK's client ID metadata document path (`clientMetadataUrl`, used when the metadata
//    says `client_id_metadata_document_supported`): it registers nothing and saves
//    {client_id: URL, issuer}. Then PKCE and `resource` (RFC 8707), and the redirect: the
//    connect fails with UnauthorizedError. Prints {"authorization_url", "cimd_supported",
//    "resource_metadata_url", "resource_metadata"} on one line.
// 2. Reads the callback URL (after login and consent, done by the Rust test) from stdin,
//    checks `state`, and `transport.finishAuth(code)`: the token exchange.
// 3. Connects again (a new transport, the same provider and its tokens), lists the tools and
//    calls `whoami`; prints {"tools", "whoami", "aud", "scope", "client"} on one line (aud
//    read from the access token).
import { createInterface } from "node:readline";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [serverUrl, redirectUrl, clientIdUrl] = process.argv.slice(2);

class MemoryProvider {
  constructor() {
    this.stored = {};
  }
  get clientMetadataUrl() {
    return clientIdUrl || undefined;
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

const provider = new MemoryProvider();
const newClient = () => new Client({ name: "tessera-mcp-sdk-test-client", version: "1.0.0" });

const first = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
try {
  await newClient().connect(first);
  throw new Error("connected without authorization");
} catch (error) {
  if (!(error instanceof UnauthorizedError)) {
    throw error;
  }
}
const discovery = provider.stored.discovery;
if (!provider.stored.authorizationUrl) {
  throw new Error("the transport's auth() sent no browser to the authorization server");
}
console.log(
  JSON.stringify({
    authorization_url: provider.stored.authorizationUrl,
    cimd_supported:
      discovery?.authorizationServerMetadata?.client_id_metadata_document_supported ?? null,
    resource_metadata_url: discovery?.resourceMetadataUrl ?? null,
    resource_metadata: discovery?.resourceMetadata ?? null,
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
await first.finishAuth(code);
await first.close();

const client = newClient();
await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider }));
const tools = await client.listTools();
const result = await client.callTool({ name: "whoami", arguments: {} });
await client.close();
if (result.isError) {
  throw new Error(`whoami failed: ${JSON.stringify(result)}`);
}
const token = provider.stored.tokens.access_token;
const payload = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
console.log(
  JSON.stringify({
    tools: tools.tools.map((t) => t.name),
    whoami: JSON.parse(result.content[0].text),
    aud: payload.aud,
    scope: provider.stored.tokens.scope,
    client: provider.stored.client,
  }),
);
