//! RFC 8707 resource indicators (docs/spec.md §8): resource servers own resource URIs,
//! `resource` at authorize and at every grant sets the access token's `aud`, refresh and
//! code exchange may narrow but never widen, introspection shows a resource server only
//! the tokens meant for it, and `/api/v1` accepts only its own audience
//! (docs/security.md F4, G2, J1).

use base64::Engine;
use serde_json::{Value, json};
use tessera::clients::NewClient;

use crate::helpers::oauth::{REDIRECT, WebClient, json, pkce, query_param};
use crate::helpers::{Backend, TestApp, spawn_app};
use tessera::clock::Clock as _;

crate::on_both_backends!(
    j1_f4_resource_sets_the_audience_at_every_grant,
    invalid_target_for_unknown_malformed_or_wider_resources,
    g2_a_resource_server_sees_only_tokens_meant_for_its_resources,
    f4_api_v1_accepts_its_own_audience_and_no_other_resource,
    resource_uris_are_validated_and_belong_to_one_resource_server,
    rfc_9728_metadata_describes_api_v1_and_its_401s_point_at_it,
    g2_f4_resources_through_api_v1_clients_are_validated_and_become_the_audience,
);

pub const MCP: &str = "https://mcp.example.com/mcp";
pub const TOOLS: &str = "https://tools.example.com/";

/// A resource server owning `resources`: (id, secret).
pub fn resource_server_with(app: &TestApp, resources: &[&str]) -> (String, String) {
    let (id, secret) = app.register(NewClient {
        name: "MCP server".into(),
        resource_server: true,
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    });
    (id, secret.expect("confidential"))
}

/// The claims of a JWT, unverified (the tests check what tessera wrote).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

/// The authorization request parameters for `client` plus `extra`.
pub fn auth_params(client: &WebClient, scope: &str, challenge: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st8"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// authorize (with `resources`) → consent page (checked to name each resource) → approve:
/// (code, verifier).
pub async fn code_for(
    app: &TestApp,
    b: &reqwest::Client,
    client: &WebClient,
    scope: &str,
    resources: &[&str],
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut params = auth_params(client, scope, &challenge);
    for r in resources {
        params.push(("resource".into(), r.to_string()));
    }
    let q = serde_urlencoded::to_string(&params).expect("query");
    let r = b
        .get(format!("{}/oauth/authorize?{q}", app.address))
        .send()
        .await
        .expect("authorize");
    let location = if r.status() == 302 {
        r.headers()["location"].to_str().expect("ascii").to_string()
    } else {
        assert_eq!(r.status(), 200, "consent page expected");
        let html = r.text().await.expect("html");
        for res in resources {
            assert!(html.contains(res), "the consent page names {res}");
        }
        app.approve(b, &html).await
    };
    (
        query_param(&location, "code").expect("code in redirect"),
        verifier,
    )
}

pub async fn exchange(
    app: &TestApp,
    client: &WebClient,
    code: &str,
    verifier: &str,
    resources: &[&str],
) -> (u16, Value) {
    let mut params = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    params.extend(resources.iter().map(|r| ("resource", *r)));
    json(app.token(client, &params).await).await
}

async fn refresh(app: &TestApp, client: &WebClient, rt: &str, resources: &[&str]) -> (u16, Value) {
    let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    params.extend(resources.iter().map(|r| ("resource", *r)));
    json(app.token(client, &params).await).await
}

pub fn aud(tokens: &Value) -> Value {
    claims(tokens["access_token"].as_str().expect("at"))["aud"].clone()
}

async fn j1_f4_resource_sets_the_audience_at_every_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    resource_server_with(&app, &[MCP, TOOLS]);
    let client = app.web_client("inference:read inference:write");
    let b = app.user("res@example.com").await;

    // Two resources (J1: `resource` may repeat): the token is for both, as an array.
    let (code, verifier) = code_for(&app, &b, &client, "inference:read", &[MCP, TOOLS]).await;
    let (status, tokens) = exchange(&app, &client, &code, &verifier, &[]).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(aud(&tokens), json!([MCP, TOOLS]));
    let rt = tokens["refresh_token"].as_str().expect("rt").to_string();

    // A refresh may narrow to one of them, and later ask for all of them again.
    let (status, narrowed) = refresh(&app, &client, &rt, &[MCP]).await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(aud(&narrowed), json!(MCP));
    let rt = narrowed["refresh_token"].as_str().expect("rt").to_string();
    let (status, again) = refresh(&app, &client, &rt, &[]).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(aud(&again), json!([MCP, TOOLS]));

    // J1 at the token endpoint: both, repeated, are the grant's own set.
    let (status, both) = refresh(
        &app,
        &client,
        again["refresh_token"].as_str().expect("rt"),
        &[TOOLS, MCP],
    )
    .await;
    assert_eq!(status, 200, "{both}");
    assert_eq!(aud(&both), json!([MCP, TOOLS]));

    // The code exchange may narrow too.
    let (code, verifier) = code_for(&app, &b, &client, "inference:read", &[MCP, TOOLS]).await;
    let (status, one) = exchange(&app, &client, &code, &verifier, &[TOOLS]).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(aud(&one), json!(TOOLS));

    // No resource anywhere: the default audience (the issuer).
    let (code, verifier) = code_for(&app, &b, &client, "inference:read", &[]).await;
    let (status, plain) = exchange(&app, &client, &code, &verifier, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(aud(&plain), json!(app.state.issuer));

    // client_credentials: the requested resource, or the default audience.
    let (id, secret) = app.machine_client("inference:read");
    let machine = WebClient {
        id,
        secret: Some(secret),
    };
    let (status, cc) = json(
        app.token(
            &machine,
            &[("grant_type", "client_credentials"), ("resource", MCP)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{cc}");
    assert_eq!(aud(&cc), json!(MCP));
    let (_, cc) = json(
        app.token(&machine, &[("grant_type", "client_credentials")])
            .await,
    )
    .await;
    assert_eq!(aud(&cc), json!(app.state.issuer));
}

async fn invalid_target_for_unknown_malformed_or_wider_resources(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    resource_server_with(&app, &[MCP, TOOLS]);
    let client = app.web_client("inference:read");
    let b = app.user("target@example.com").await;

    // At authorize: by redirect, with error, state and iss, for unknown and malformed URIs.
    for bad in [
        "https://unknown.example.com/mcp",
        "/relative",
        "https://mcp.example.com/mcp#frag",
    ] {
        let (_, challenge) = pkce();
        let mut params = auth_params(&client, "inference:read", &challenge);
        params.push(("resource".into(), bad.into()));
        let q = serde_urlencoded::to_string(&params).expect("query");
        let r = b
            .get(format!("{}/oauth/authorize?{q}", app.address))
            .send()
            .await
            .expect("authorize");
        assert_eq!(r.status(), 302, "{bad}");
        let location = r.headers()["location"].to_str().expect("ascii").to_string();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some("invalid_target")
        );
        assert_eq!(query_param(&location, "state").as_deref(), Some("st8"));
        assert_eq!(
            query_param(&location, "iss").as_deref(),
            Some(app.state.issuer.as_str())
        );
    }

    // At the code exchange: a resource outside the grant, or unknown, is refused and the
    // code is not used up by the refusal.
    let (code, verifier) = code_for(&app, &b, &client, "inference:read", &[MCP]).await;
    for wider in [TOOLS, "https://unknown.example.com/", "not a uri"] {
        let (status, body) = exchange(&app, &client, &code, &verifier, &[wider]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_target"))
        );
    }
    let (status, tokens) = exchange(&app, &client, &code, &verifier, &[MCP]).await;
    assert_eq!(status, 200, "{tokens}");
    let rt = tokens["refresh_token"].as_str().expect("rt").to_string();

    // At refresh: wider is refused, and the refresh token still works afterwards.
    let (status, body) = refresh(&app, &client, &rt, &[MCP, TOOLS]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    let (status, ok) = refresh(&app, &client, &rt, &[MCP]).await;
    assert_eq!(status, 200, "the refusal rotated nothing: {ok}");

    // A grant without resources may be exchanged for a known resource, not an unknown one.
    let (code, verifier) = code_for(&app, &b, &client, "inference:read", &[]).await;
    let (status, body) = exchange(
        &app,
        &client,
        &code,
        &verifier,
        &["https://nowhere.example/"],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    let (status, body) = exchange(&app, &client, &code, &verifier, &[TOOLS]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(aud(&body), json!(TOOLS));
}

async fn g2_a_resource_server_sees_only_tokens_meant_for_its_resources(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mcp = resource_server_with(&app, &[MCP]);
    let tools = resource_server_with(&app, &[TOOLS]);
    let legacy = app.resource_server();
    let client = app.web_client("inference:read");
    let b = app.user("intro@example.com").await;

    let (code, verifier) = code_for(&app, &b, &client, "inference:read", &[MCP]).await;
    let (_, for_mcp) = exchange(&app, &client, &code, &verifier, &[]).await;
    let at = for_mcp["access_token"].as_str().expect("at");
    let seen = app.introspect(&mcp, at).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["aud"], MCP);
    assert_eq!(app.introspect(&tools, at).await, json!({"active": false}));
    assert_eq!(app.introspect(&legacy, at).await["active"], true);

    // A token for the default audience, a refresh token and an API key are not meant for
    // any registered resource.
    let (code, verifier) = code_for(&app, &b, &client, "inference:read", &[]).await;
    let (_, plain) = exchange(&app, &client, &code, &verifier, &[]).await;
    let at = plain["access_token"].as_str().expect("at");
    assert_eq!(app.introspect(&mcp, at).await, json!({"active": false}));
    assert_eq!(app.introspect(&legacy, at).await["active"], true);
    let rt = plain["refresh_token"].as_str().expect("rt");
    assert_eq!(app.introspect(&mcp, rt).await, json!({"active": false}));
    assert_eq!(app.introspect(&legacy, rt).await["active"], true);
    let org = app.org(tessera::orgs::Plan::Free);
    let key = app.api_key(
        &org,
        crate::helpers::api::KeySpec {
            scopes: "inference:read",
            ..Default::default()
        },
    );
    assert_eq!(
        app.introspect(&mcp, &key.key).await,
        json!({"active": false})
    );
    assert_eq!(app.introspect(&legacy, &key.key).await["active"], true);
}

async fn f4_api_v1_accepts_its_own_audience_and_no_other_resource(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    resource_server_with(&app, &[MCP]);
    let client = app.web_client("admin inference:read");
    let b = app.user("apiv1@example.com").await;
    let api = format!("{}/api/v1", app.state.issuer);
    let mut status_for = Vec::new();
    for resources in [vec![], vec![api.as_str()], vec![MCP]] {
        let (code, verifier) = code_for(&app, &b, &client, "admin", &resources).await;
        let (status, tokens) = exchange(&app, &client, &code, &verifier, &[]).await;
        assert_eq!(status, 200, "{tokens}");
        let at = tokens["access_token"].as_str().expect("at");
        let a = app
            .api(reqwest::Method::GET, "/api/v1/api-keys", at, None)
            .await;
        status_for.push(a.status);
    }
    assert_eq!(
        status_for,
        [200, 200, 401],
        "the default audience and /api/v1's own resource pass; another resource's token does not"
    );
}

async fn resource_uris_are_validated_and_belong_to_one_resource_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let try_register = |resources: Vec<&str>, resource_server: bool| {
        let new = NewClient {
            name: "RS".into(),
            resource_server,
            redirect_uris: if resource_server {
                vec![]
            } else {
                vec![REDIRECT.into()]
            },
            resources: Some(resources.into_iter().map(str::to_string).collect()),
            ..Default::default()
        };
        let valid = new.validate(&app.state.settings.scopes)?;
        let mut conn = app.state.pool.get().expect("conn");
        tessera::db::write_tx(&mut conn, |conn| {
            tessera::clients::store::insert(conn, &valid, "tsr", app.clock.now())
        })
        .map(|(row, _)| row)
    };
    let row = try_register(vec![MCP, TOOLS, MCP], true).expect("registers");
    assert_eq!(
        row.resource_list(),
        vec![MCP.to_string(), TOOLS.to_string()]
    );
    for (bad, why) in [
        ("https://a.example/#x", "fragment"),
        ("/relative", "absolute"),
        ("", "1 to 2000"),
    ] {
        let e = try_register(vec![bad], true).expect_err(bad).to_string();
        assert!(e.contains("resources") && e.contains(why), "{e}");
    }
    let e = try_register(vec![MCP], true)
        .expect_err("taken")
        .to_string();
    assert!(
        e.contains("already belongs to another resource server"),
        "{e}"
    );
    let e = try_register(vec!["https://other.example/"], false)
        .expect_err("not a resource server")
        .to_string();
    assert!(e.contains("only a resource server"), "{e}");
    // Nothing of the refused registrations stayed.
    let mut conn = app.state.pool.get().expect("conn");
    assert_eq!(
        tessera::oauth::resource::of_client(&mut conn, &row.id).expect("query"),
        vec![MCP.to_string(), TOOLS.to_string()]
    );
}

async fn rfc_9728_metadata_describes_api_v1_and_its_401s_point_at_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let issuer = app.state.issuer.clone();
    let expected = json!({
        "resource": format!("{issuer}/api/v1"),
        "authorization_servers": [issuer],
        "scopes_supported": ["admin"],
        "bearer_methods_supported": ["header"],
        "resource_name": "tessera management API",
        "resource_documentation": format!("{issuer}/api/v1/openapi.json"),
    });
    // RFC 9728 §3.1: the path-inserted location, and the host-level one.
    for path in [
        "/.well-known/oauth-protected-resource/api/v1",
        "/.well-known/oauth-protected-resource",
    ] {
        assert_eq!(app.get_json(path).await, expected, "{path}");
    }
    let metadata = format!("{issuer}/.well-known/oauth-protected-resource/api/v1");
    // No credential, and a bad one: both 401s carry resource_metadata (RFC 9728 §5.1).
    let r = app.get("/api/v1/clients").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"].to_str().expect("ascii"),
        format!(r#"Bearer realm="tessera", resource_metadata="{metadata}""#)
    );
    let a = app
        .api(
            reqwest::Method::GET,
            "/api/v1/clients",
            "tsr_sk_nonsense",
            None,
        )
        .await;
    assert_eq!(a.status, 401);
    let challenge = a.header("www-authenticate").expect("challenge");
    assert!(
        challenge.contains(r#"error="invalid_token""#)
            && challenge.ends_with(&format!(r#"resource_metadata="{metadata}""#)),
        "{challenge}"
    );
}

/// docs/spec.md §8 through the admin API (`POST`/`GET`/`PUT /api/v1/clients`): a resource
/// server made with `resources` reads them back, an update replaces them (omitted: kept;
/// the kind stays), a malformed URI or one of another resource server is a 400 naming
/// `resources` and stores nothing, and `client_credentials` with `resource=` gets a token
/// whose `aud` is the resource, which that resource server alone sees as active (G2, F4).
async fn g2_f4_resources_through_api_v1_clients_are_validated_and_become_the_audience(
    backend: Backend,
) {
    use reqwest::Method;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    const NEW: &str = "https://new.example.com/api";
    const OTHER: &str = "https://other.example.com/";
    resource_server_with(&app, &[OTHER]);
    let (_, admin) = app.org_with_admin(tessera::orgs::Plan::Free);
    let key = admin.key.as_str();

    // Refused before anything is stored, each naming `resources` (and the owned URI).
    let invalid = |a: &crate::helpers::api::Answer, why: &str| {
        assert_eq!(a.status, 400, "{why}: {}", a.body);
        assert_eq!(
            a.body["error"]["type"], "invalid_request_error",
            "{}",
            a.body
        );
        let m = a.body["error"]["message"].as_str().expect("message");
        assert!(m.contains("resources") && m.contains(why), "{m}");
    };
    for (resources, why) in [
        (json!(["/relative"]), "absolute"),
        (json!(["https://mcp.example.com/mcp#frag"]), "fragment"),
        (json!([MCP, OTHER]), OTHER),
    ] {
        let body = json!({"name": "MCP server", "resource_server": true, "resources": resources});
        let a = app
            .api(Method::POST, "/api/v1/clients", key, Some(body))
            .await;
        invalid(&a, why);
    }
    let a = app
        .api(
            Method::POST,
            "/api/v1/clients",
            key,
            Some(json!({"name": "App", "redirect_uris": [REDIRECT], "resources": [MCP]})),
        )
        .await;
    invalid(&a, "only a resource server");
    let listed = app.api(Method::GET, "/api/v1/clients", key, None).await;
    assert_eq!(
        listed.body["data"],
        json!([]),
        "nothing stored by a refusal"
    );

    // Created, read back (sorted, without duplicates), and listed.
    let a = app
        .api(
            Method::POST,
            "/api/v1/clients",
            key,
            Some(json!({"name": "MCP server", "resource_server": true,
                        "resources": [TOOLS, MCP, TOOLS]})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["resource_server"], true);
    assert_eq!(a.body["resources"], json!([MCP, TOOLS]));
    assert_eq!(a.body["grant_types"], json!([]));
    assert_eq!(a.body["token_endpoint_auth_method"], "client_secret_basic");
    let rs = (
        a.body["client_id"].as_str().expect("id").to_string(),
        a.body["client_secret"]
            .as_str()
            .expect("secret")
            .to_string(),
    );
    let path = format!("/api/v1/clients/{}", rs.0);
    let read = app.api(Method::GET, &path, key, None).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["resources"], json!([MCP, TOOLS]));
    assert_eq!(read.body["resource_server"], true);
    assert!(read.body.get("client_secret").is_none());
    let listed = app.api(Method::GET, "/api/v1/clients", key, None).await;
    assert_eq!(listed.body["data"][0]["resources"], json!([MCP, TOOLS]));

    // client_credentials with resource=: the token's aud is the resource, and the
    // resource server made over the API sees it.
    let (id, secret) = app.machine_client("inference:read");
    let machine = WebClient {
        id,
        secret: Some(secret),
    };
    let cc = |resource: &'static str| {
        let (app, machine) = (&app, &machine);
        async move {
            json(
                app.token(
                    machine,
                    &[("grant_type", "client_credentials"), ("resource", resource)],
                )
                .await,
            )
            .await
        }
    };
    let (status, for_mcp) = cc(MCP).await;
    assert_eq!(status, 200, "{for_mcp}");
    assert_eq!(aud(&for_mcp), json!(MCP));
    let mcp_token = for_mcp["access_token"].as_str().expect("at").to_string();
    let seen = app.introspect(&rs, &mcp_token).await;
    assert_eq!((&seen["active"], &seen["aud"]), (&json!(true), &json!(MCP)));

    // An update: taken or malformed resources are refused and change nothing.
    for (resources, why) in [
        (json!([NEW, OTHER]), OTHER),
        (json!([NEW, "relative"]), "absolute"),
    ] {
        let body = json!({"name": "MCP server", "resources": resources});
        invalid(&app.api(Method::PUT, &path, key, Some(body)).await, why);
    }
    assert_eq!(
        app.api(Method::GET, &path, key, None).await.body["resources"],
        json!([MCP, TOOLS])
    );
    // Replaced; the kind stays whatever the body says.
    let a = app
        .api(
            Method::PUT,
            &path,
            key,
            Some(json!({"name": "MCP server", "resource_server": false,
                        "resources": [NEW, TOOLS]})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["resources"], json!([NEW, TOOLS]));
    assert_eq!(
        a.body["resource_server"], true,
        "resource_server cannot change"
    );
    // Omitted: kept.
    let a = app
        .api(
            Method::PUT,
            &path,
            key,
            Some(json!({"name": "MCP server, renamed"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["resources"], json!([NEW, TOOLS]));

    // The dropped resource is unknown now; the new one is the audience; the resource
    // server no longer sees the token for the resource it gave up.
    let (status, body) = cc(MCP).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    let (status, for_new) = cc(NEW).await;
    assert_eq!(status, 200, "{for_new}");
    assert_eq!(aud(&for_new), json!(NEW));
    let new_token = for_new["access_token"].as_str().expect("at");
    assert_eq!(app.introspect(&rs, new_token).await["aud"], NEW);
    assert_eq!(
        app.introspect(&rs, &mcp_token).await,
        json!({"active": false})
    );
}
