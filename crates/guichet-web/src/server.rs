//! The HTTP/1.1 server loop, with what `axum::serve` lacks against slow and idle clients:
//!
//! - a connection whose request headers do not arrive within [`ServeOptions::header_timeout`]
//!   is closed (slowloris, half-open connections); form bodies have their own timeout in
//!   the CSRF layer;
//! - one address (other than a trusted proxy) holds at most
//!   [`ServeOptions::max_per_address`] connections;
//! - at most [`ServeOptions::max_connections`] connections are held; past that, and when
//!   the process runs out of file descriptors, the connection that has been silent the
//!   longest (no byte in or out) with no request being answered is closed to make room, so
//!   that a flood of idle connections cannot keep a real request (or `/healthz`) out;
//! - on shutdown, listening stops, requests in progress finish, idle connections close.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;

use crate::client::TrustedProxies;

/// Limits on connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A connection that has not sent a whole request head within this time is closed.
    pub header_timeout: Duration,
    /// Connections held at once.
    pub max_connections: usize,
    /// Connections one address holds at once (trusted proxies aside).
    pub max_per_address: usize,
    /// Proxies, whose connections carry many clients' requests: not capped per address.
    pub trusted_proxies: TrustedProxies,
    /// How long requests in progress may take to finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_per_address: 256,
            trusted_proxies: TrustedProxies::default(),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// What the accept loop knows of a held connection.
#[derive(Debug)]
struct Held {
    /// Who holds it (IPv6: the /64).
    address: IpAddr,
    /// Requests being answered on it now.
    busy: Arc<AtomicUsize>,
    /// Milliseconds since the server started, at its last byte in or out.
    last_active: Arc<AtomicU64>,
    /// Closes it.
    close: Arc<Notify>,
}

/// Every held connection, and how many each address holds.
#[derive(Debug, Default)]
struct Connections {
    next_id: u64,
    held: BTreeMap<u64, Held>,
    per_address: HashMap<IpAddr, usize>,
}

impl Connections {
    fn len(&self) -> usize {
        self.held.len()
    }

    fn insert(&mut self, held: Held) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        *self.per_address.entry(held.address).or_default() += 1;
        self.held.insert(id, held);
        id
    }

    fn remove(&mut self, id: u64) -> Option<Held> {
        let held = self.held.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&held.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_address.remove(&held.address);
            }
        }
        Some(held)
    }

    /// Closes the connection silent the longest with no request being answered; `false`
    /// when every one is answering a request.
    fn close_most_silent(&mut self) -> bool {
        let silent = self
            .held
            .iter()
            .filter(|(_, held)| held.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, held)| held.last_active.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match silent.and_then(|id| self.remove(id)) {
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

/// The address a connection counts against: IPv4 as is, IPv6 by /64.
fn counted_address(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Warns at most once a second: a flood must not turn into a flood of log lines.
#[derive(Debug)]
struct Quiet(Option<Instant>);

impl Quiet {
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        let ready = self.0.is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1));
        if ready {
            self.0 = Some(now);
        }
        ready
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let started = Instant::now();
    let connections = Arc::new(Mutex::new(Connections::default()));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut quiet = Quiet(None);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                let freed = out_of_descriptors(&error) && lock(&connections).close_most_silent();
                if quiet.ready() {
                    tracing::warn!(%error, freed, "could not accept a connection");
                }
                tokio::time::sleep(Duration::from_millis(if freed { 1 } else { 50 })).await;
                continue;
            }
        };
        let address = counted_address(peer.ip());
        let capped = !options.trusted_proxies.trusts(peer.ip());
        let (id, busy, last_active, close) = {
            let mut held = lock(&connections);
            if capped && held.per_address.get(&address).copied().unwrap_or_default() >= options.max_per_address {
                if quiet.ready() {
                    tracing::warn!(%address, "one address holds too many connections: refusing another");
                }
                continue;
            }
            if held.len() >= options.max_connections && !held.close_most_silent() {
                if quiet.ready() {
                    tracing::warn!(held = held.len(), "every connection is answering a request: refusing a new one");
                }
                continue;
            }
            let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let (busy, last_active, close) =
                (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicU64::new(now)), Arc::new(Notify::new()));
            let entry = Held {
                address,
                busy: Arc::clone(&busy),
                last_active: Arc::clone(&last_active),
                close: Arc::clone(&close),
            };
            (held.insert(entry), busy, last_active, close)
        };
        let (router, connections, stopping) = (router.clone(), Arc::clone(&connections), stopping.clone());
        let header_timeout = options.header_timeout;
        tokio::spawn(async move {
            let stream = Watched { inner: stream, last_active, started };
            serve_connection(stream, peer, router, busy, close, stopping, header_timeout).await;
            lock(&connections).remove(id);
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

/// A connection's stream, noting the time of its last byte in or out.
struct Watched {
    inner: TcpStream,
    last_active: Arc<AtomicU64>,
    started: Instant,
}

impl Watched {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(now, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_connection(
    stream: Watched,
    peer: SocketAddr,
    router: Router,
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
    mut stopping: watch::Receiver<bool>,
    header_timeout: Duration,
) {
    let _ = stream.inner.set_nodelay(true);
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
        .header_read_timeout(header_timeout)
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, async move { drop(stopped.await) }, options));
        tokio::time::sleep(Duration::from_millis(10)).await;
        (address, stop)
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let options = ServeOptions { header_timeout: Duration::from_millis(300), ..ServeOptions::default() };
        let (address, _stop) = start(options).await;
        let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the connection was closed by the server");
    }

    #[tokio::test]
    async fn one_address_holds_a_limited_number_of_connections() {
        let options = ServeOptions { max_per_address: 3, ..ServeOptions::default() };
        let (address, _stop) = start(options).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(tokio::net::TcpStream::connect(address).await.unwrap());
        }
        let mut fourth = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), fourth.read_to_end(&mut rest)).await;
        assert!(closed.is_ok_and(|n| n.is_ok_and(|n| n == 0)), "the fourth was refused");
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut again = tokio::net::TcpStream::connect(address).await.unwrap();
        again.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), again.read_to_string(&mut answer)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn the_most_silent_connection_makes_room_for_a_new_one() {
        let options = ServeOptions { max_connections: 2, ..ServeOptions::default() };
        let (address, _stop) = start(options).await;
        let mut first = tokio::net::TcpStream::connect(address).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The second one talks (a slow head), so it is not the most silent.
        let mut second = tokio::net::TcpStream::connect(address).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        second.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut third = tokio::net::TcpStream::connect(address).await.unwrap();
        third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer)).await;
        assert!(read.is_ok() && answer.starts_with("HTTP/1.1 200"), "{answer}");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut rest)).await;
        assert!(closed.is_ok_and(|n| n.is_ok_and(|n| n == 0)), "the oldest idle one was closed");
    }
}
