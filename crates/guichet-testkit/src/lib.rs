//! What guichet's tests share: a real SMTP server over TCP that keeps what it receives,
//! and can be told to answer with temporary (4xx) or permanent (5xx) failures.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mailin_embedded::response::{OK, START_DATA};
use mailin_embedded::{Handler, Response, Server, SslConfig};

/// How the sink answers the end of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `250`: accepted.
    Accept,
    /// `451`: try again later.
    TemporaryFailure,
    /// `550`: never.
    PermanentFailure,
}

/// A message as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `MAIL FROM`.
    pub from: String,
    /// `RCPT TO`s.
    pub to: Vec<String>,
    /// The raw message (headers and body, CRLF line ends).
    pub data: Vec<u8>,
    /// When its last byte arrived (before the sink answered).
    pub at: Instant,
}

impl Received {
    /// The raw message as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Debug)]
struct State {
    mode: Mode,
    /// Domains whose addresses are refused for good (`550`), whatever the mode: a
    /// hospital's filter, while other addresses still get their mail.
    refused_domains: Vec<String>,
    /// How long the sink keeps a client waiting for its answer once a message is in:
    /// long enough for the client to die with the message delivered but not confirmed.
    hold: Duration,
    messages: Vec<Received>,
}

/// A running sink.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
}

#[derive(Clone)]
struct Session {
    state: Arc<Mutex<State>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Session {
    // Failures are answered at RCPT: mailin stays in its DATA state after an error at
    // the end of DATA, which no client survives.
    fn rcpt(&mut self, to: &str) -> Response {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let domain = to.trim_matches(['<', '>']).rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        if domain.is_some_and(|d| state.refused_domains.contains(&d)) {
            return Response::custom(550, "5.7.1 Message rejected by the recipient's policy".to_owned());
        }
        match state.mode {
            Mode::Accept => OK,
            Mode::TemporaryFailure => {
                Response::custom(451, "4.3.0 Mailbox temporarily unavailable, try later".to_owned())
            }
            Mode::PermanentFailure => Response::custom(550, "5.1.1 No such user here".to_owned()),
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        START_DATA
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let data = std::mem::take(&mut self.data);
        let received = Received { from: self.from.clone(), to: self.to.clone(), data, at: Instant::now() };
        let hold = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.messages.push(received);
            state.hold
        };
        std::thread::sleep(hold);
        OK
    }
}

impl SmtpSink {
    /// Starts a sink on a free port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("SMTP sink: {e}"));
        Self::serve(listener)
    }

    /// Starts a sink on a given port (to bring a "mail server" back up).
    pub fn start_on(address: SocketAddr) -> Self {
        let listener = TcpListener::bind(address).unwrap_or_else(|e| panic!("SMTP sink on {address}: {e}"));
        Self::serve(listener)
    }

    /// A local address nothing listens on (yet): a mail server that is down.
    pub fn unused_address() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    }

    fn serve(listener: TcpListener) -> Self {
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Accept,
            refused_domains: Vec::new(),
            hold: Duration::ZERO,
            messages: Vec::new(),
        }));
        let session = Session { state: Arc::clone(&state), from: String::new(), to: Vec::new(), data: Vec::new() };
        std::thread::spawn(move || {
            let mut server = Server::new(session);
            server.with_name("sink.test").with_tcp_listener(listener);
            if server.with_ssl(SslConfig::None).is_ok() {
                let _ = server.serve();
            }
        });
        Self { address, state }
    }

    /// `smtp://127.0.0.1:PORT?tls=none`, for `GUICHET_MAIL_TRANSPORT`.
    pub fn url(&self) -> String {
        url_for(self.address)
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Changes how it answers.
    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).mode = mode;
    }

    /// Refuses every address of `domain` for good (`550` at `RCPT`), whatever the mode.
    pub fn refuse_domain(&self, domain: &str) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).refused_domains.push(domain.to_ascii_lowercase());
    }

    /// Keeps each client waiting `hold` for the answer to a message it has received.
    pub fn hold_answers(&self, hold: Duration) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).hold = hold;
    }

    /// What the sink received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).messages.clone()
    }

    /// Waits (up to ten seconds) until it holds `count` messages, and returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..200 {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the SMTP sink received {} message(s), expected {count}", self.messages().len());
    }
}

/// `smtp://ADDRESS?tls=none`.
pub fn url_for(address: SocketAddr) -> String {
    format!("smtp://{address}?tls=none")
}
