//! R7 (bodies): actix-web's `client_request_timeout` bounds only the request head; a body
//! trickled one byte a second must still be cut (`--request-timeout-seconds`): answered 408
//! and closed, while other clients are served as usual.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestDb, spawn_app_with};

crate::on_both_backends!(
    r7_trickled_request_bodies_are_cut_at_the_request_timeout,
    r7_slowloris_header_tricklers_are_closed_and_others_served,
);

/// Sends a request head announcing a body, then trickles the body a byte every 200 ms
/// until the server answers or closes; returns what it read and how long it took.
async fn trickle(port: u16, chunked: bool) -> (String, Duration) {
    let start = Instant::now();
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let framing = if chunked {
        "Transfer-Encoding: chunked"
    } else {
        "Content-Length: 500"
    };
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.expect("head");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let byte: &[u8] = if chunked { b"1\r\na\r\n" } else { b"a" };
        if sock.write_all(byte).await.is_err() {
            // The server closed its side; collect what it said.
            let _ = tokio::time::timeout(Duration::from_secs(1), sock.read_to_end(&mut got)).await;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), sock.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
            Err(_) => {}
        }
        if start.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

async fn r7_trickled_request_bodies_are_cut_at_the_request_timeout(backend: Backend) {
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let mut settings = db.settings();
    settings.request_timeout_seconds = 2;
    settings.workers = 2;
    let app = spawn_app_with(db, settings).await;
    let (id, secret) = app.machine_client("inference:read");

    let slow: Vec<_> = (0..5)
        .map(|i| tokio::spawn(trickle(app.port, i % 2 == 1)))
        .collect();
    // Meanwhile an ordinary client is served as usual.
    for _ in 0..5 {
        let r = app
            .post_form(
                "/oauth/token",
                Some((&id, &secret)),
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for task in slow {
        let (said, took) = task.await.expect("trickle task");
        assert!(
            said.starts_with("HTTP/1.1 408"),
            "a trickled body must be answered 408, got {said:?}"
        );
        assert!(
            said.to_ascii_lowercase().contains("connection: close"),
            "and its connection closed: {said:?}"
        );
        assert!(
            took < Duration::from_secs(6),
            "cut near the 2 s request timeout, took {took:?}"
        );
    }
}

/// How long the header trickle of R7 lasts: 60 s in the full run (`TESSERA_FAULT_FULL=1`,
/// `bash .ci/faults`), 8 s in `cargo test`.
fn trickle_duration() -> Duration {
    if std::env::var("TESSERA_FAULT_FULL").is_ok_and(|v| v == "1") {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(8)
    }
}

/// Resident memory of this process (the server runs in it), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens a connection and sends a request head one byte a second, reconnecting whenever
/// the server closes it, until `until`; returns how many times the server closed it.
async fn header_trickler(port: u16, until: Instant) -> u32 {
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = 0;
    while Instant::now() < until {
        let Ok(mut sock) = TcpStream::connect(("127.0.0.1", port)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut buf = [0u8; 1024];
        for byte in head.iter().cycle() {
            if Instant::now() >= until {
                return closed;
            }
            if sock.write_all(&[*byte]).await.is_err() {
                closed += 1;
                break;
            }
            match tokio::time::timeout(Duration::from_secs(1), sock.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed += 1;
                    break;
                }
                // The server answered early (408/400) before closing: keep reading.
                Ok(Ok(_)) | Err(_) => {}
            }
        }
    }
    closed
}

async fn r7_slowloris_header_tricklers_are_closed_and_others_served(backend: Backend) {
    let Some(db) = TestDb::create(backend) else {
        return;
    };
    let mut settings = db.settings();
    settings.workers = 2;
    let app = spawn_app_with(db, settings).await;
    let (id, secret) = app.machine_client("inference:read");
    let duration = trickle_duration();
    let rss_before = rss_kib();
    let until = Instant::now() + duration;
    let tricklers: Vec<_> = (0..300)
        .map(|_| tokio::spawn(header_trickler(app.port, until)))
        .collect();

    // A legitimate client at 5 requests a second, through the whole trickle.
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let start = Instant::now();
        let r = app
            .http
            .post(format!("{}/oauth/token", app.address))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("a legitimate request is answered during the trickle");
        assert_eq!(r.status(), 200, "a legitimate request succeeds");
        latencies.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut closed = 0;
    for t in tricklers {
        closed += t.await.expect("trickler");
    }
    latencies.sort();
    let p95 = latencies[latencies.len() * 95 / 100];
    let rss_after = rss_kib();
    eprintln!(
        "R7 {backend:?}: {} legitimate requests, p95 {p95:?}; 300 tricklers closed {closed} times in {duration:?}; RSS {rss_before} → {rss_after} KiB",
        latencies.len()
    );
    assert!(p95 < Duration::from_secs(1), "legitimate p95 {p95:?}");
    // The head must arrive within `client_request_timeout` (5 s): every trickler is cut
    // at least once in 8 s.
    assert!(closed >= 300, "slow sockets closed {closed} times");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory stays bounded: {rss_before} → {rss_after} KiB"
    );
}
