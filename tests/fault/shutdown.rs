//! R6: SIGTERM under load. While the R1 load runs, requests are left in flight (head and
//! half the body sent: a `client_credentials` token, an API key creation); then SIGTERM.
//! New connections are refused from then on, the requests in flight are answered 2xx once
//! their bodies arrive, no answer is a 5xx, the process exits 0 within
//! `--shutdown-timeout-seconds`, and after a restart the journal check of R1 passes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::crash::{full, prepare, random_between, restart_and_check};
use crate::helpers::{Backend, now};
use crate::journal::{Checked, Checker, Fact};
use crate::load::Load;

crate::on_both_backends!(
    r6_sigterm_finishes_requests_in_flight_refuses_new_connections_and_exits_0
);

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A request whose body is half sent.
struct InFlight {
    sock: TcpStream,
    rest: Vec<u8>,
}

impl InFlight {
    async fn start(port: u16, path: &str, headers: &[(&str, String)], body: &[u8]) -> Self {
        let mut sock = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect before SIGTERM");
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let half = body.len() / 2;
        sock.write_all(head.as_bytes()).await.expect("head");
        sock.write_all(&body[..half]).await.expect("half the body");
        Self {
            sock,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body; the status and JSON body of the answer.
    async fn finish(mut self) -> (u16, Value) {
        self.sock.write_all(&self.rest).await.expect("the rest");
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.sock.read_to_end(&mut raw))
            .await
            .expect("answered in time")
            .expect("read");
        let text = String::from_utf8_lossy(&raw);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (status, body)
    }
}

async fn r6_sigterm_finishes_requests_in_flight_refuses_new_connections_and_exits_0(
    backend: Backend,
) {
    let Some((mut site, world, journal)) = prepare(backend) else {
        return;
    };
    let rounds = if full() { 5 } else { 1 };
    let started = Instant::now();
    let mut checker = Checker::default();
    let mut total = Checked::default();
    let mut longest_exit = Duration::ZERO;
    for run in 1..=rounds {
        let mut server = site.serve(&["--shutdown-timeout-seconds", "5"]);
        let load = Arc::new(Load::new(&server.address, &world, &journal, 100 + run));
        let stop = Arc::clone(&load.stop);
        let workers = tokio::spawn(Arc::clone(&load).run());
        tokio::time::sleep(random_between(
            Duration::from_millis(500),
            Duration::from_millis(1500),
        ))
        .await;

        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", world.machine.0, world.machine.1));
        let form = "grant_type=client_credentials&scope=inference%3Aread".as_bytes();
        let token = InFlight::start(
            server.port,
            "/oauth/token",
            &[
                ("Authorization", format!("Basic {basic}")),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_string(),
                ),
            ],
            form,
        )
        .await;
        let key_body = serde_json::to_vec(&json!({
            "name": format!("in flight {run}"), "scopes": ["inference:read"], "type": "secret"
        }))
        .expect("json");
        let key = InFlight::start(
            server.port,
            "/api/v1/api-keys",
            &[
                ("Authorization", format!("Bearer {}", world.admin_key)),
                ("Content-Type", "application/json".to_string()),
            ],
            &key_body,
        )
        .await;
        // Let the server read both heads.
        tokio::time::sleep(Duration::from_millis(200)).await;

        server.sigterm();
        let signalled = Instant::now();
        stop.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let refused = TcpStream::connect(("127.0.0.1", server.port)).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
            "round {run}: a new connection after SIGTERM must be refused: {refused:?}"
        );

        let (status, body) = token.finish().await;
        assert_eq!(
            status, 200,
            "round {run}: the token request in flight: {body}"
        );
        let access = body["access_token"].as_str().expect("access_token");
        journal.record(&Fact::CcToken {
            access: access.into(),
            exp: now() + body["expires_in"].as_i64().expect("expires_in"),
        });
        let (status, body) = key.finish().await;
        assert_eq!(
            status, 201,
            "round {run}: the key creation in flight: {body}"
        );
        journal.record(&Fact::KeyCreated {
            id: body["id"].as_str().expect("id").into(),
            key: body["key"].as_str().expect("key").into(),
        });

        let wrong = workers.await.expect("load");
        assert!(
            wrong.is_empty(),
            "round {run}: wrong answers around SIGTERM: {wrong:?}"
        );
        let exit = server.wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(2));
        let took = signalled.elapsed();
        assert_eq!(
            exit.and_then(|s| s.code()),
            Some(0),
            "round {run}: exit 0 after SIGTERM, within the shutdown timeout (after {took:?})\n{}",
            server.log_text()
        );
        assert!(
            took < SHUTDOWN_TIMEOUT + Duration::from_secs(1),
            "round {run}: exited {took:?} after SIGTERM"
        );
        longest_exit = longest_exit.max(took);
        total.add(
            restart_and_check(
                &mut site,
                &world,
                &journal,
                &mut checker,
                &format!("SIGTERM round {run}"),
            )
            .await,
        );
    }
    eprintln!(
        "R6 {backend:?}: {rounds} rounds in {:?}; longest exit {longest_exit:?} after SIGTERM; checked {total:?}; 0 violations",
        started.elapsed()
    );
}
