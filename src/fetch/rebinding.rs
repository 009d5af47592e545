//! docs/security.md K6, DNS rebinding: the fetcher resolves a host once, checks every
//! answer, and then connects only to the checked addresses; a name whose DNS answer changes
//! between the check and the connection cannot send the connection elsewhere, because it
//! is never resolved a second time.

use super::tests::{json_response, serve};
use super::*;

fn port_of(base: &str) -> u16 {
    base.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[tokio::test]
async fn k6_the_connection_goes_to_the_checked_addresses_and_no_name_is_resolved_again() {
    let base = serve(vec![("/doc", json_response("", r#"{"client_id": "x"}"#))]).await;
    let port = port_of(&base);
    let fetcher = Fetcher::new(true);
    let live = [SocketAddr::from(([127, 0, 0, 1], port))];

    // A name no resolver knows (RFC 6761 `.test`) reaches the server through the checked
    // address alone: nothing resolved it after the check.
    let unknown = Url::parse(&format!("http://rebind.test:{port}/doc")).expect("url");
    let got = fetcher
        .fetch_from(unknown.clone(), &live, 5120)
        .await
        .expect("fetched from the checked address");
    assert_eq!(got.json["client_id"], "x");
    // The whole fetch of that URL stops at its one resolution.
    assert_eq!(
        fetcher
            .fetch_json(unknown.as_str(), 5120)
            .await
            .expect_err("unresolvable"),
        FetchError::Resolve
    );

    // `localhost`, which the system resolves to 127.0.0.1 where the server listens, with
    // 127.0.0.2 as the checked address (as if the answer had changed since the check): the
    // connection goes to 127.0.0.2, where nothing listens, never to the system's answer.
    let named = Url::parse(&format!("http://localhost:{port}/doc")).expect("url");
    let system: Vec<SocketAddr> = tokio::net::lookup_host(("localhost", port))
        .await
        .expect("localhost resolves")
        .collect();
    assert!(system.contains(&live[0]), "{system:?}");
    let elsewhere = [SocketAddr::from(([127, 0, 0, 2], port))];
    assert_eq!(
        fetcher
            .fetch_from(named.clone(), &elsewhere, 5120)
            .await
            .expect_err("nothing listens on the checked address"),
        FetchError::Connect
    );
    // And with the live address checked, the same URL is fetched.
    assert!(fetcher.fetch_from(named, &live, 5120).await.is_ok());
}
