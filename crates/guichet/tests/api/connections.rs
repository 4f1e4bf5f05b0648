//! Idle and half-open connections: a flood of them past the connection cap, or past the
//! process's file-descriptor limit, does not keep a real request out.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use crate::helpers::{Backend, spawn_app_with};

/// Opens `n` connections that never send a byte.
async fn idle_connections(address: &str, n: usize) -> Vec<TcpStream> {
    let address = address.trim_start_matches("http://").to_owned();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match TcpStream::connect(&address).await {
            Ok(stream) => held.push(stream),
            Err(error) => panic!("connection {} refused: {error}", held.len()),
        }
    }
    held
}

/// `/healthz`, on a new connection, with a deadline.
async fn health(address: &str) -> Option<StatusCode> {
    let client = crate::helpers::http_client().timeout(Duration::from_secs(5)).build().ok()?;
    client.get(format!("{address}/healthz")).send().await.ok().map(|r| r.status())
}

#[tokio::test]
async fn idle_connections_past_the_cap_do_not_keep_a_health_check_out() {
    let app = spawn_app_with(Backend::Sqlite, &[("GUICHET_MAX_CONNECTIONS", "64")]).await;
    let mut idle = idle_connections(&app.address, 500).await;
    assert_eq!(health(&app.address).await, Some(StatusCode::OK));
    // The server made room by closing the oldest idle connections.
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), idle[0].read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
}

/// `guichet serve` in its own process with at most `files` open files.
struct Server {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(files: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
        let address = format!("http://127.0.0.1:{port}");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" serve"))
            .arg(env!("CARGO_BIN_EXE_guichet"))
            .env("GUICHET_DATABASE_URL", format!("sqlite://{}/guichet.db", dir.path().display()))
            .env("GUICHET_MAIL_TRANSPORT", format!("file:{}/outbox", dir.path().display()))
            .env("GUICHET_LISTEN", format!("127.0.0.1:{port}"))
            .env("GUICHET_PUBLIC_URL", &address)
            .env("GUICHET_MAX_CONNECTIONS", "100000")
            .env("GUICHET_LOG", "warn")
            .env_remove("GUICHET_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("guichet serve: {e}"));
        let server = Self { child, address, _dir: dir };
        for _ in 0..100 {
            if health(&server.address).await == Some(StatusCode::OK) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("guichet serve did not start");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_server_out_of_file_descriptors_closes_idle_connections_to_answer() {
    // The cap is set far above what 256 open files allow: the limit itself is hit.
    let server = Server::start(256).await;
    let _idle = idle_connections(&server.address, 600).await;
    assert_eq!(health(&server.address).await, Some(StatusCode::OK));
}
