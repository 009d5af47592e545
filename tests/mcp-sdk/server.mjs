// An MCP server built with the MCP TypeScript SDK, protected by tessera (docs/spec.md §8),
// driven by tests/api/mcp.rs. Usage:
//   MCP_RS_CLIENT_ID=… MCP_RS_CLIENT_SECRET=… node server.mjs <tessera issuer> [port]
// (the id and secret of a tessera `--resource-server` client whose resource is this
// server's URL; the port defaults to 0, any free one).
//
// - `McpServer` with one tool, `whoami` (the token's client_id, scope and aud), over the
//   SDK's Streamable HTTP server transport (stateless: a server and transport per request),
//   at POST /mcp on 127.0.0.1, on the SDK's express app (`createMcpExpressApp`).
// - Its URL, `http://127.0.0.1:<port>/mcp`, is its RFC 8707 resource: the SDK's
//   `mcpAuthMetadataRouter` publishes RFC 9728 metadata at
//   /.well-known/oauth-protected-resource/mcp with `resource` = that URL and
//   `authorization_servers` = [tessera's issuer] (the router also mirrors tessera's RFC 8414
//   metadata, fetched at start, at /.well-known/oauth-authorization-server).
// - The SDK's `requireBearerAuth` guards /mcp: 401 with `WWW-Authenticate: Bearer
//   error="invalid_token", error_description=…, resource_metadata="…"` without a token or
//   with one refused. Its verifier introspects the token at tessera (RFC 7662, HTTP Basic as
//   the resource server): only `active: true` passes (tessera shows a resource server only
//   tokens whose aud is one of its resources), and then only when `aud` names this server's
//   URL (checked here too, and again by the SDK's `expectedResource`).
// Prints {"url": …} on one stdout line once listening; runs until killed.
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import {
  getOAuthProtectedResourceMetadataUrl,
  mcpAuthMetadataRouter,
} from "@modelcontextprotocol/sdk/server/auth/router.js";
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";
import { InvalidTokenError, ServerError } from "@modelcontextprotocol/sdk/server/auth/errors.js";

const [issuer, portArg] = process.argv.slice(2);
const clientId = process.env.MCP_RS_CLIENT_ID;
const clientSecret = process.env.MCP_RS_CLIENT_SECRET;
if (!issuer || !clientId || !clientSecret) {
  throw new Error(
    "usage: MCP_RS_CLIENT_ID=… MCP_RS_CLIENT_SECRET=… node server.mjs <tessera issuer> [port]",
  );
}

const metadataResponse = await fetch(
  `${issuer.replace(/\/$/, "")}/.well-known/oauth-authorization-server`,
);
if (!metadataResponse.ok) {
  throw new Error(`tessera's metadata answered ${metadataResponse.status}`);
}
const oauthMetadata = await metadataResponse.json();
const introspection = oauthMetadata.introspection_endpoint;
if (!introspection) {
  throw new Error("tessera's metadata names no introspection_endpoint");
}
// RFC 6749 §2.3.1: each half form-urlencoded, then Base64.
const basic = Buffer.from(
  `${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`,
).toString("base64");

const app = createMcpExpressApp({ host: "127.0.0.1" });
const listener = app.listen(Number(portArg ?? 0), "127.0.0.1");
await new Promise((resolve, reject) => {
  listener.once("listening", resolve);
  listener.once("error", reject);
});
const mcpUrl = new URL(`http://127.0.0.1:${listener.address().port}/mcp`);
const resource = mcpUrl.href;

const verifier = {
  async verifyAccessToken(token) {
    const r = await fetch(introspection, {
      method: "POST",
      headers: {
        authorization: `Basic ${basic}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token, token_type_hint: "access_token" }).toString(),
    });
    if (!r.ok) {
      throw new ServerError(`introspection answered ${r.status}`);
    }
    const data = await r.json();
    if (data.active !== true) {
      throw new InvalidTokenError("Token is not active");
    }
    // `aud`: one string or a list (docs/spec.md §8). It must name this server.
    const audiences = [data.aud ?? []].flat();
    if (!audiences.includes(resource)) {
      throw new InvalidTokenError("Token was not issued for this resource");
    }
    const reported = audiences.find((a) => a === resource) ?? audiences[0];
    return {
      token,
      clientId: data.client_id,
      scopes: typeof data.scope === "string" && data.scope ? data.scope.split(" ") : [],
      expiresAt: data.exp,
      // What the SDK's own check (`expectedResource`, below) compares.
      resource: reported && URL.canParse(reported) ? new URL(reported) : undefined,
      extra: { aud: data.aud, sub: data.sub ?? null },
    };
  },
};

app.use(
  mcpAuthMetadataRouter({
    oauthMetadata,
    resourceServerUrl: mcpUrl,
    resourceName: "tessera MCP SDK test server",
  }),
);
const bearer = requireBearerAuth({
  verifier,
  resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(mcpUrl),
  expectedResource: mcpUrl,
});

function mcpServer() {
  const server = new McpServer({ name: "tessera-mcp-sdk-test", version: "1.0.0" });
  server.registerTool(
    "whoami",
    { description: "The access token's client_id, scope and aud, as tessera introspected it" },
    async (extra) => {
      const who = {
        client_id: extra.authInfo?.clientId ?? null,
        scope: extra.authInfo?.scopes.join(" ") ?? null,
        aud: extra.authInfo?.extra?.aud ?? null,
        sub: extra.authInfo?.extra?.sub ?? null,
      };
      return {
        content: [{ type: "text", text: JSON.stringify(who) }],
        structuredContent: who,
      };
    },
  );
  return server;
}

app.post("/mcp", bearer, async (req, res) => {
  const server = mcpServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on("close", () => {
    transport.close();
    server.close();
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  } catch (error) {
    console.error("MCP request failed:", error);
    if (!res.headersSent) {
      res.status(500).json({
        jsonrpc: "2.0",
        error: { code: -32603, message: "Internal server error" },
        id: null,
      });
    }
  }
});
// Stateless: no standalone SSE stream, no sessions to end.
const notAllowed = (_req, res) => {
  res.status(405).set("Allow", "POST").json({
    jsonrpc: "2.0",
    error: { code: -32000, message: "Method not allowed." },
    id: null,
  });
};
app.get("/mcp", bearer, notAllowed);
app.delete("/mcp", bearer, notAllowed);

console.log(JSON.stringify({ url: resource }));
