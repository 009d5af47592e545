//! R8: the J6 list against the real binary — 10 MB bodies (with `Content-Length`, chunked,
//! and 100 MB announced), gzip bombs, a 64 KiB header, 200 header fields, a 100 KB URL and
//! 2,000 and 10,000 parameters — each answered with its documented status (413, 415, 431,
//! 414, 400; docs/security.md J6, README "Limits"), round after round and several at once,
//! while the resident memory of the server process (`VmRSS` in `/proc/<pid>/status`) stays flat and
//! legitimate requests are still served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::crash::full;
use crate::helpers::Backend;
use crate::process::{Site, World};

crate::on_both_backends!(r8_oversized_and_compressed_requests_get_their_4xx_and_memory_stays_flat);

const MB: usize = 1024 * 1024;

/// One abusive request: the raw head (ending in the blank line) and the body bytes sent
/// after it, and the statuses the documentation allows for it.
struct Abuse {
    what: &'static str,
    head: String,
    body: Arc<Vec<u8>>,
    expect: &'static [u16],
}

/// Sends `head` then `body` (in 64 KiB writes, on its own task, so that a server which
/// answers early and stops reading never blocks the reader) and reads the answer: its
/// status and body. Gives up after 20 s.
async fn send(port: u16, head: String, body: Arc<Vec<u8>>) -> (u16, String) {
    let sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut rd, mut wr) = sock.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        for chunk in body.chunks(64 * 1024) {
            wr.write_all(chunk).await?;
        }
        wr.flush().await?;
        // Keep the write half open until the answer is read.
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, std::io::Error>(wr)
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    break;
                }
            }
        }
    })
    .await;
    writer.abort();
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `n` bytes of zeros, gzip-compressed by the system's `gzip` (about 1000:1).
fn gzip_bomb(n: usize) -> Option<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let writer = std::thread::spawn(move || {
        let zeros = vec![0u8; MB];
        for _ in 0..n / MB {
            stdin.write_all(&zeros)?;
        }
        Ok::<_, std::io::Error>(())
    });
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    out.status.success().then_some(out.stdout)
}

fn cases(world: &World) -> Vec<Abuse> {
    let ten_mb = Arc::new(vec![b'a'; 10 * MB]);
    let one_mb = Arc::new(vec![b'a'; MB]);
    let empty = Arc::new(Vec::new());
    // 10 MB in 1 MiB chunks, `Transfer-Encoding: chunked`.
    let chunked = {
        let mut b = Vec::with_capacity(10 * MB + 200);
        for _ in 0..10 {
            b.extend_from_slice(format!("{:x}\r\n", MB).as_bytes());
            b.extend_from_slice(&one_mb);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"0\r\n\r\n");
        Arc::new(b)
    };
    let bomb = Arc::new(gzip_bomb(100 * MB).expect("gzip is installed"));
    // Many distinct parameters, then a repeated `scope` (J1): 2,000 fit the 16 KiB form
    // limit of the token endpoint, 10,000 do not.
    let params = |n: u32| {
        let mut s = String::from("grant_type=client_credentials");
        for i in 0..n {
            s.push_str(&format!("&p{i:x}="));
        }
        s.push_str("&scope=inference:read&scope=inference:read");
        Arc::new(s.into_bytes())
    };
    let (few, many) = (params(2_000), params(10_000));
    assert!(few.len() < 16 * 1024 && many.len() > 16 * 1024);
    let (id, secret) = &world.machine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let key = &world.admin_key;
    let post = |path: &str, headers: &str, length: Option<usize>| {
        let framing = length.map_or_else(
            || "Transfer-Encoding: chunked\r\n".to_string(),
            |n| format!("Content-Length: {n}\r\n"),
        );
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}{framing}\r\n")
    };
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let json = "Content-Type: application/json\r\n";
    let bearer = format!("Authorization: Bearer {key}\r\n{json}");
    vec![
        Abuse {
            what: "10 MB form to /oauth/token",
            head: post("/oauth/token", form, Some(ten_mb.len())),
            body: ten_mb.clone(),
            expect: &[413],
        },
        Abuse {
            what: "10 MB chunked form to /oauth/token",
            head: post("/oauth/token", form, None),
            body: chunked.clone(),
            expect: &[413],
        },
        Abuse {
            what: "100 MB announced, 1 MB sent, to /oauth/token",
            head: post("/oauth/token", form, Some(100 * MB)),
            body: one_mb.clone(),
            expect: &[413],
        },
        Abuse {
            what: "10 MB JSON to /api/v1/api-keys",
            head: post("/api/v1/api-keys", &bearer, Some(ten_mb.len())),
            body: ten_mb.clone(),
            expect: &[413],
        },
        Abuse {
            what: "10 MB chunked JSON to /api/v1/api-keys",
            head: post("/api/v1/api-keys", &bearer, None),
            body: chunked.clone(),
            expect: &[413],
        },
        Abuse {
            what: "10 MB JSON to /oauth/register",
            head: post("/oauth/register", json, Some(ten_mb.len())),
            body: ten_mb.clone(),
            expect: &[413],
        },
        Abuse {
            what: "gzip bomb (100 MB of zeros) to /oauth/token",
            head: post(
                "/oauth/token",
                &format!("{form}Content-Encoding: gzip\r\nAuthorization: Basic {basic}\r\n"),
                Some(bomb.len()),
            ),
            body: bomb.clone(),
            expect: &[415],
        },
        Abuse {
            what: "gzip bomb to /api/v1/api-keys",
            head: post(
                "/api/v1/api-keys",
                &format!("{bearer}Content-Encoding: gzip\r\n"),
                Some(bomb.len()),
            ),
            body: bomb.clone(),
            expect: &[415],
        },
        Abuse {
            what: "one 64 KiB header",
            head: format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: {}\r\n\r\n",
                "a".repeat(64 * 1024)
            ),
            body: empty.clone(),
            expect: &[431],
        },
        Abuse {
            what: "200 header fields",
            head: format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n",
                (0..200)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>()
            ),
            body: empty.clone(),
            expect: &[431],
        },
        Abuse {
            what: "a 60 KB URL",
            head: format!(
                "GET /healthz?q={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "a".repeat(60_000)
            ),
            body: empty.clone(),
            expect: &[414],
        },
        // Past 64 KiB the `http` crate cannot hold the URI, and actix-http's parser answers
        // a bare 400 before tessera sees the request (README "Limits").
        Abuse {
            what: "a 100 KB URL",
            head: format!(
                "GET /healthz?q={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "a".repeat(100_000)
            ),
            body: empty.clone(),
            expect: &[400],
        },
        Abuse {
            what: "2,000 parameters and a repeated one to /oauth/token",
            head: post(
                "/oauth/token",
                &format!("{form}Authorization: Basic {basic}\r\n"),
                Some(few.len()),
            ),
            body: few,
            expect: &[400],
        },
        Abuse {
            what: "10,000 parameters to /oauth/token",
            head: post(
                "/oauth/token",
                &format!("{form}Authorization: Basic {basic}\r\n"),
                Some(many.len()),
            ),
            body: many,
            expect: &[413],
        },
    ]
}

/// Sends every case once, `parallel` copies of each at a time; panics on an undocumented
/// status.
async fn round(port: u16, cases: &[Abuse], parallel: usize) {
    for case in cases {
        let started = Instant::now();
        let answers: Vec<_> = (0..parallel)
            .map(|_| tokio::spawn(send(port, case.head.clone(), case.body.clone())))
            .collect();
        for a in answers {
            let (status, body) = a.await.expect("request task");
            assert!(
                case.expect.contains(&status),
                "R8 {}: {status} (expected {:?}) {body}",
                case.what,
                case.expect
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "R8 {}: took {:?}",
            case.what,
            started.elapsed()
        );
    }
}

async fn r8_oversized_and_compressed_requests_get_their_4xx_and_memory_stays_flat(
    backend: Backend,
) {
    let Some(mut site) = Site::shared(backend) else {
        return;
    };
    let world = World::create(&site);
    let server = site.serve(&[]);
    let port = server.port;
    let cases = cases(&world);
    let rounds = if full() { 30 } else { 3 };
    let parallel = 4;

    // The first round warms the server's buffers and threads up; memory is measured from
    // after it.
    round(port, &cases, parallel).await;
    let warm = server.rss_kib();
    let peak = Arc::new(AtomicU64::new(warm));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), server.pid());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("VmRSS:"))
                            .and_then(|l| l.split_whitespace().nth(1))
                            .and_then(|v| v.parse::<u64>().ok())
                    })
                {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    for _ in 0..rounds {
        round(port, &cases, parallel).await;
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let after = server.rss_kib();
    let peak = peak.load(Ordering::Relaxed);
    let sent: usize = cases.iter().map(|c| c.body.len() + c.head.len()).sum();
    eprintln!(
        "R8 {backend:?}: {rounds} rounds × {} cases × {parallel} at once ({} MiB offered a round) in {:?}; server RSS after warm-up {warm} KiB, peak {peak} KiB, after {after} KiB",
        cases.len(),
        sent * parallel / MB,
        started.elapsed()
    );
    // Nothing is buffered past the 64 KiB limits or decompressed: 4 × 10 MB bodies at once
    // would show as 40 MiB.
    assert!(
        peak < warm + 24 * 1024,
        "R8: RSS peaked at {peak} KiB from {warm} KiB"
    );
    assert!(
        after < warm + 16 * 1024,
        "R8: RSS grew from {warm} KiB to {after} KiB"
    );

    // And the server still serves.
    let (id, secret) = &world.machine;
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/token", server.address))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 200, "a legitimate request after the abuse");
}
