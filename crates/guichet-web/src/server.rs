//! The HTTP/1.1 server loop, with what `axum::serve` lacks against slow and idle clients:
//!
//! - a connection whose request headers do not arrive within [`ServeOptions::header_timeout`]
//!   is closed (slowloris, half-open connections);
//! - at most [`ServeOptions::max_connections`] connections are held; past that, and when
//!   the process runs out of file descriptors, the oldest connection with no request in
//!   progress is closed to make room, so that a flood of idle connections cannot keep a
//!   real request (or `/healthz`) out;
//! - on shutdown, listening stops, requests in progress finish, idle connections close.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;

/// Limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// A connection that has not sent a whole request head within this time is closed.
    pub header_timeout: Duration,
    /// Connections held at once.
    pub max_connections: usize,
    /// How long requests in progress may take to finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// A held connection, as the accept loop sees it.
#[derive(Debug)]
struct Held {
    /// Requests being answered on it now.
    busy: Arc<AtomicUsize>,
    /// Closes it.
    close: Arc<Notify>,
}

/// Every held connection, oldest first (ids grow).
#[derive(Debug, Default)]
struct Connections {
    next_id: u64,
    held: BTreeMap<u64, Held>,
}

impl Connections {
    fn len(&self) -> usize {
        self.held.len()
    }

    /// Closes the oldest connection with no request in progress; `false` when every one
    /// is busy.
    fn close_oldest_idle(&mut self) -> bool {
        let oldest = self.held.iter().find(|(_, held)| held.busy.load(Ordering::Acquire) == 0).map(|(id, _)| *id);
        match oldest.and_then(|id| self.held.remove(&id)) {
            Some(held) => {
                held.close.notify_one();
                true
            }
            None => false,
        }
    }
}

fn lock(connections: &Mutex<Connections>) -> std::sync::MutexGuard<'_, Connections> {
    connections.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether an accept error means "no file descriptor left".
fn out_of_descriptors(error: &std::io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs.
    matches!(error.raw_os_error(), Some(23 | 24))
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let connections = Arc::new(Mutex::new(Connections::default()));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if out_of_descriptors(&error) {
                    let freed = lock(&connections).close_oldest_idle();
                    tracing::warn!(freed, "out of file descriptors: closing the oldest idle connection");
                } else {
                    tracing::debug!(%error, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (id, busy, close) = {
            let mut held = lock(&connections);
            if held.len() >= options.max_connections && !held.close_oldest_idle() {
                tracing::warn!(held = held.len(), "every connection is busy: refusing a new one");
                continue;
            }
            let id = held.next_id;
            held.next_id += 1;
            let (busy, close) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
            held.held.insert(id, Held { busy: Arc::clone(&busy), close: Arc::clone(&close) });
            (id, busy, close)
        };
        let (router, connections, stopping) = (router.clone(), Arc::clone(&connections), stopping.clone());
        tokio::spawn(async move {
            serve_connection(stream, peer, router, busy, close, stopping, options).await;
            lock(&connections).held.remove(&id);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + options.drain_timeout;
    while lock(&connections).len() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
    mut stopping: watch::Receiver<bool>,
    options: ServeOptions,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let (router, busy) = (router.clone(), Arc::clone(&busy));
        busy.fetch_add(1, Ordering::AcqRel);
        async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await;
            busy.fetch_sub(1, Ordering::AcqRel);
            response
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        () = close.notified() => {}
        () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn start(options: ServeOptions) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, async move { drop(stopped.await) }, options));
        (address, stop)
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let options = ServeOptions { header_timeout: Duration::from_millis(300), ..ServeOptions::default() };
        let (address, _stop) = start(options).await;
        let mut slow = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("{e}"));
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap_or_else(|e| panic!("{e}"));
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the connection was closed by the server");
    }

    #[tokio::test]
    async fn the_oldest_idle_connection_makes_room_for_a_new_one() {
        let options = ServeOptions { max_connections: 2, ..ServeOptions::default() };
        let (address, _stop) = start(options).await;
        let mut first = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("{e}"));
        let _second = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("{e}"));
        let mut third = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("{e}"));
        third
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut answer = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer)).await;
        assert!(read.is_ok() && answer.starts_with("HTTP/1.1 200"), "{answer}");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut rest)).await;
        assert!(closed.is_ok_and(|n| n.is_ok_and(|n| n == 0)), "the oldest idle one was closed");
    }
}
