//! Slow, stalled and greedy clients are cut off by timeouts and limits and
//! cannot starve the others: stalled header reads and idle connections are
//! closed after the header read timeout, a stalled body gets 408, oversized
//! headers 431, connections over the cap 503.

use crate::support::*;
use axum::Router;
use axum::routing::{get, post};
use retrain_api::server::{HttpLimits, serve};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Reads until the server closes the connection; returns what it sent, or
/// `None` if it was still open at the deadline.
async fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> Option<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

async fn open(address: std::net::SocketAddr, first_bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(first_bytes).await.unwrap();
    stream
}

#[sqlx::test(migrator = "retrain_engine::MIGRATOR")]
async fn stalled_clients_are_cut_off_and_do_not_starve_others(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = spawn(&connect, "api", &[]).await;
    let limits = HttpLimits::default();
    let started = Instant::now();
    // Slowloris: 200 connections that send half a request line and stall.
    let mut stalled = Vec::new();
    for _ in 0..200 {
        stalled.push(open(app.address, b"POST /feedb").await);
    }
    let mut idle = open(app.address, b"").await;
    let mut stalled_body = open(
        app.address,
        b"POST /feedback HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"feat",
    )
    .await;

    // Everyone else is answered promptly meanwhile.
    let example = rows(&app.pool, retrain_steps::ml::Split::Pool).await.remove(0);
    for _ in 0..20 {
        let asked = Instant::now();
        let response = app.post("/predict", json!({"features": features(&example)})).await;
        assert_eq!(response.status(), 200);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "answered in {:?}",
            asked.elapsed()
        );
    }
    let asked = Instant::now();
    let response = app
        .post(
            "/feedback",
            json!({"features": features(&example), "correct_label": example.label}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "answered in {:?}",
        asked.elapsed()
    );
    // Fresh connections too.
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    for _ in 0..5 {
        assert_eq!(fresh.get(app.url("/ready")).send().await.unwrap().status(), 200);
    }

    // The stalled connections are closed by the server once the header read
    // timeout has passed, not before.
    let deadline = started + limits.header_read_timeout + Duration::from_secs(5);
    for (i, stream) in stalled.iter_mut().enumerate() {
        let sent = read_until_closed(stream, deadline).await;
        assert_eq!(
            sent.as_deref(),
            Some(""),
            "stalled connection {i} after {:?}",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() >= limits.header_read_timeout - Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        read_until_closed(&mut idle, deadline).await.as_deref(),
        Some(""),
        "idle connection"
    );
    let answer = read_until_closed(&mut stalled_body, deadline)
        .await
        .expect("a stalled body is cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"body_timeout""#), "{answer}");

    // Oversized headers, too many headers, NUL or a bare CR in a header.
    let big = app
        .client
        .get(app.url("/health"))
        .header("x-big", "a".repeat(70_000))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 431);
    let mut many = app.client.get(app.url("/health"));
    for i in 0..120 {
        many = many.header(format!("x-h{i}"), "1");
    }
    assert_eq!(many.send().await.unwrap().status(), 431);
    for raw in [
        &b"GET /health HTTP/1.1\r\nhost: x\r\nx-retrain-actor: a\0b\r\n\r\n"[..],
        &b"GET /health HTTP/1.1\r\nhost: x\r\nx-retrain-actor: a\rb\r\n\r\n"[..],
    ] {
        let mut stream = open(app.address, raw).await;
        let answer = read_until_closed(&mut stream, Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    // And the service is fine.
    assert_eq!(app.get("/ready").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_shutdown_drains() {
    let limits = HttpLimits {
        header_read_timeout: Duration::from_millis(1_500),
        body_read_timeout: Duration::from_millis(500),
        max_connections: 3,
        ..HttpLimits::default()
    };
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
        .route("/echo", post(|body: String| async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, app, limits, shutdown.clone()));

    // Three idle connections take every slot; the fourth is refused at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(open(address, b"").await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = open(address, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let answer = read_until_closed(&mut over, Instant::now() + Duration::from_secs(2))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains(r#""code":"overloaded""#), "{answer}");

    // The idle ones time out and free their slots.
    for stream in &mut held {
        assert_eq!(
            read_until_closed(stream, Instant::now() + Duration::from_secs(5))
                .await
                .as_deref(),
            Some("")
        );
    }
    let client = reqwest::Client::new();
    let url = format!("http://{address}");
    assert_eq!(client.get(&url).send().await.unwrap().text().await.unwrap(), "ok");

    // A body that stalls fails after the body timeout (a bare router answers
    // 400; the API's extractors answer 408 `body_timeout`), and the
    // connection is closed.
    let asked = Instant::now();
    let mut stalled = open(
        address,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
    )
    .await;
    let answer = read_until_closed(&mut stalled, Instant::now() + Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(asked.elapsed() >= limits.body_read_timeout, "{:?}", asked.elapsed());

    // Shutdown lets a request in flight finish, then stops.
    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = format!("{url}/slow");
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    assert_eq!(in_flight.await.unwrap(), "slow");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(address).await.is_err(), "no longer listening");
}
