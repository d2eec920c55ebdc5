//! The API client: HTTP/1 over the daemon's unix socket. Starts a daemon in
//! the background when none answers.

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use crate::wire::{ErrorBody, ErrorKind};

/// Why a request to the daemon failed. Each message is complete on its own:
/// sources are attached for `{:#}`, never repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket and no daemon could be started.
    #[error("cannot reach the berth daemon at {socket}: {message}")]
    Unreachable { socket: PathBuf, message: String },
    /// The daemon closed the connection before its answer was complete: it
    /// crashed or was stopped in the middle of the request. `log` is the log
    /// of a daemon this client starts, when there is one.
    #[error("{}", went_away(socket, log.as_deref()))]
    DaemonGone { socket: PathBuf, log: Option<PathBuf> },
    /// HTTP failed otherwise: the daemon's answer was malformed.
    #[error("talking to the daemon")]
    Http(#[source] hyper::Error),
    /// The daemon answered with an error of this kind.
    #[error("{message}")]
    Api {
        status: StatusCode,
        kind: ErrorKind,
        message: String,
    },
    /// A request body could not be encoded.
    #[error("cannot encode the request")]
    Encode(#[source] serde_json::Error),
    /// The daemon answered with something unreadable.
    #[error("unreadable answer from the daemon")]
    Decode(#[source] serde_json::Error),
    /// The request's path is not a valid URI: a caller put user input into
    /// it without [`segment`].
    #[error("cannot send a request for {path}: {message}")]
    BadPath { path: String, message: String },
}

/// `s` as one URI path segment (or query value): every byte but ASCII
/// letters, digits, `-`, `_` and `~` percent-encoded, so `?`, `#`, `/`, `%`,
/// a space or a NUL stays part of the name and reaches the daemon's router
/// (which decodes it) as it was given, and `.`/`..` cannot read as dot
/// segments. (`.` is unreserved, so encoding it changes nothing a server
/// decodes.)
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The one sentence for [`ClientError::DaemonGone`]: what happened, that
/// nothing is lost (the daemon is level-triggered and reconciles at start),
/// and where to look.
fn went_away(socket: &Path, log: Option<&Path>) -> String {
    let what = "went away during the request (it crashed or was stopped); \
                its next start reconciles whatever was in flight";
    match log {
        Some(log) => format!("the berth daemon {what}; its log is {}", log.display()),
        None => format!("the berth daemon at {} {what}", socket.display()),
    }
}

/// Whether a hyper error while sending a request means the daemon went away:
/// the connection closed or was reset before the answer's head arrived.
fn connection_lost(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return true;
    }
    // Writing into a socket the daemon no longer reads: EPIPE, ECONNRESET.
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
            );
        }
        source = s.source();
    }
    false
}

/// The kind of an error answer whose body is not an [`ErrorBody`] (from a
/// layer below the handlers, or an older daemon): the inverse of the API's
/// kind-to-status mapping.
fn kind_of_status(status: StatusCode) -> ErrorKind {
    match status {
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::CONFLICT => ErrorKind::Conflict,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorKind::Unavailable,
        s if s.is_client_error() => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// How to start a daemon when none answers.
#[derive(Debug, Clone, Default)]
pub struct DaemonSpawn {
    pub args: Vec<String>,
    pub log: PathBuf,
    /// Variables the daemon must not inherit: its settings are all in
    /// `args` (recorded by the operator's daemon), so the caller's
    /// environment cannot change them.
    pub env_remove: Vec<&'static str>,
    /// Why no daemon may be started after all (the recorded settings are
    /// unreadable or serve another socket): the error to answer with.
    pub refusal: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    spawn: Option<DaemonSpawn>,
}

impl Client {
    pub fn new(socket: PathBuf, spawn: Option<DaemonSpawn>) -> Client {
        Client { socket, spawn }
    }

    async fn connect(&self) -> Result<UnixStream> {
        match UnixStream::connect(&self.socket).await {
            Ok(s) => Ok(s),
            Err(first) => {
                let unreachable = |message: String| ClientError::Unreachable {
                    socket: self.socket.clone(),
                    message,
                };
                // Only "nobody listens here" means no daemon: anything else
                // (permission denied, say) is the operator's to see, and a
                // second daemon would only fail on the root's lock.
                let no_daemon = matches!(
                    first.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                );
                match &self.spawn {
                    Some(spawn) if no_daemon => match &spawn.refusal {
                        Some(why) => Err(unreachable(format!("{first}; not starting one: {why}"))),
                        None => self.start_daemon(spawn).await,
                    },
                    _ => Err(unreachable(first.to_string())),
                }
            }
        }
    }

    async fn start_daemon(&self, spawn: &DaemonSpawn) -> Result<UnixStream> {
        let unreachable = |message: String| ClientError::Unreachable {
            socket: self.socket.clone(),
            message,
        };
        if let Some(dir) = spawn.log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| unreachable(format!("create {}: {e}", dir.display())))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spawn.log)
            .map_err(|e| unreachable(format!("open {}: {e}", spawn.log.display())))?;
        let exe = std::env::current_exe().map_err(|e| unreachable(e.to_string()))?;
        let mut child = {
            use std::os::unix::process::CommandExt;
            let mut command = Command::new(exe);
            spawn.env_remove.iter().for_each(|var| {
                command.env_remove(var);
            });
            command
                .args(&spawn.args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| unreachable(e.to_string()))?)
                .stderr(log)
                // Its own process group: a Ctrl-C at this terminal must not reach it.
                .process_group(0)
                .spawn()
                .map_err(|e| unreachable(format!("cannot start the daemon: {e}")))?
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = UnixStream::connect(&self.socket).await {
                // Reaped later by init: the daemon outlives this CLI.
                return Ok(s);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let tail = tail_of(&spawn.log);
                return Err(unreachable(format!("the daemon exited ({status}): {tail}")));
            }
            if Instant::now() > deadline {
                return Err(unreachable(format!(
                    "the daemon did not answer within 20 s; see {}",
                    spawn.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// What a hyper error while sending a request means.
    fn send_error(&self, e: hyper::Error) -> ClientError {
        if connection_lost(&e) {
            self.gone(&e)
        } else {
            ClientError::Http(e)
        }
    }

    /// What a hyper error while reading an answer's body means. The head
    /// has arrived and the API's bodies never fail on the daemon's side (its
    /// streams are infallible), so only a broken connection cuts one short.
    fn body_error(&self, e: hyper::Error) -> ClientError {
        self.gone(&e)
    }

    fn gone(&self, e: &hyper::Error) -> ClientError {
        tracing::debug!(error = ?e, "connection to the daemon lost");
        ClientError::DaemonGone {
            socket: self.socket.clone(),
            // Name the log only if there is one to read: a daemon started
            // otherwise (systemd, a test harness) logs elsewhere.
            log: self.spawn.as_ref().map(|s| s.log.clone()).filter(|log| log.exists()),
        }
    }

    /// Sends a request; returns the response with a streaming body.
    pub async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Response<Incoming>> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.send_error(e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder().method(method).uri(path).header("host", "berth");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| bad_path(path, e))?;
        let resp = sender.send_request(req).await.map_err(|e| self.send_error(e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = self.read_body(resp).await?;
            let (kind, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => (b.kind, b.error),
                Err(_) => {
                    let text = String::from_utf8_lossy(&bytes).trim().to_string();
                    let message = if text.is_empty() { status.to_string() } else { text };
                    (kind_of_status(status), message)
                }
            };
            return Err(ClientError::Api { status, kind, message });
        }
        Ok(resp)
    }

    /// Sends a request asking to upgrade the connection to `protocol`;
    /// returns the upgraded byte stream. An error answer is an error, as
    /// with [`Client::send`].
    pub async fn upgrade(
        &self,
        path: &str,
        protocol: &str,
        body: Vec<u8>,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.send_error(e))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", "berth")
            .header("content-type", "application/json")
            .header("connection", "Upgrade")
            .header("upgrade", protocol)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| bad_path(path, e))?;
        let resp = sender.send_request(req).await.map_err(|e| self.send_error(e))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status();
            let bytes = self.read_body(resp).await?;
            let (kind, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => (b.kind, b.error),
                Err(_) => (
                    kind_of_status(status),
                    format!("the daemon did not upgrade the connection ({status})"),
                ),
            };
            return Err(ClientError::Api { status, kind, message });
        }
        let upgraded = hyper::upgrade::on(resp).await.map_err(|e| self.send_error(e))?;
        Ok(TokioIo::new(upgraded))
    }

    async fn read_body(&self, resp: Response<Incoming>) -> Result<Bytes> {
        let body = resp.into_body().collect().await.map_err(|e| self.body_error(e))?;
        Ok(body.to_bytes())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.send(Method::GET, path, None).await?;
        serde_json::from_slice(&self.read_body(resp).await?).map_err(ClientError::Decode)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let body = serde_json::to_vec(body).map_err(ClientError::Encode)?;
        let resp = self.send(Method::POST, path, Some(body)).await?;
        serde_json::from_slice(&self.read_body(resp).await?).map_err(ClientError::Decode)
    }

    /// A POST without a body, for the routes documented as taking none
    /// (the API refuses a body there, even `{}`).
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.send(Method::POST, path, None).await?;
        serde_json::from_slice(&self.read_body(resp).await?).map_err(ClientError::Decode)
    }

    /// Calls `each` for every line of a newline-delimited JSON stream.
    pub async fn stream<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        mut each: impl FnMut(T),
        mut after_batch: impl FnMut(),
    ) -> Result<()> {
        let resp = self.send(method, path, body).await?;
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.body_error(e))?;
            let Some(data) = frame.data_ref() else { continue };
            buf.extend_from_slice(data);
            // A frame holds many lines: decode them all, then drop them at once.
            let mut start = 0;
            while let Some(len) = buf[start..].iter().position(|&b| b == b'\n') {
                each(serde_json::from_slice(&buf[start..start + len]).map_err(ClientError::Decode)?);
                start += len + 1;
            }
            buf.drain(..start);
            after_batch();
        }
        Ok(())
    }
}

/// A request that could not be built: its path, escaped, and why.
fn bad_path(path: &str, e: hyper::http::Error) -> ClientError {
    ClientError::BadPath {
        path: format!("{path:?}"),
        message: e.to_string(),
    }
}

fn tail_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[cfg(test)]
mod tests {
    //! The client against a scripted daemon: a unix socket that reads one
    //! request and answers with fixed bytes, then hangs up, as a daemon that
    //! is killed at that point would.

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    use super::*;
    use crate::wire::LogLine;

    /// Serves one connection: reads the request, writes `answer`, closes.
    async fn daemon_answering(answer: &'static [u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("berth.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            read_request(&mut conn).await;
            conn.write_all(answer).await.unwrap();
            // Dropping the stream closes it, mid-answer if `answer` is partial.
        });
        (dir, socket)
    }

    /// Reads a request head and its `content-length` body.
    async fn read_request(conn: &mut UnixStream) {
        let mut req = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client hung up first");
            req.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                if req.len() >= head_end + 4 + length {
                    return;
                }
            }
        }
    }

    fn client(socket: PathBuf) -> Client {
        Client::new(socket, None)
    }

    fn log_line(text: &str) -> LogLine {
        LogLine {
            time: "t".into(),
            stream: "stdout".into(),
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn a_daemon_that_dies_before_answering_went_away_said_once() {
        let (_dir, socket) = daemon_answering(b"").await;
        let err = client(socket.clone())
            .get::<Vec<LogLine>>("/v1/objects")
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::DaemonGone { log: None, .. }), "{err:?}");
        let printed = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(
            printed,
            format!(
                "the berth daemon at {} went away during the request (it crashed or was stopped); \
                 its next start reconciles whatever was in flight",
                socket.display()
            )
        );
    }

    #[tokio::test]
    async fn a_daemon_that_dies_mid_stream_went_away_after_the_lines_it_sent() {
        let (dir, socket) = daemon_answering(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              2c\r\n{\"time\":\"t\",\"stream\":\"stdout\",\"text\":\"one\"}\n\r\n",
        )
        .await;
        let log = dir.path().join("daemon.log");
        std::fs::write(&log, "").unwrap();
        let spawn = DaemonSpawn {
            log: log.clone(),
            ..DaemonSpawn::default()
        };
        let mut lines = Vec::new();
        let err = Client::new(socket, Some(spawn))
            .stream(
                Method::GET,
                "/v1/logs/web?follow=true",
                None,
                |l: LogLine| lines.push(l),
                || {},
            )
            .await
            .unwrap_err();
        assert_eq!(lines, vec![log_line("one")]);
        assert!(
            matches!(&err, ClientError::DaemonGone { log: Some(l), .. } if *l == log),
            "{err:?}"
        );
        assert!(
            err.to_string().ends_with(&format!("its log is {}", log.display())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn error_answers_carry_the_daemons_kind_and_message() {
        let (_dir, socket) = daemon_answering(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 53\r\n\r\n\
              {\"error\":\"container/web not found\",\"kind\":\"notFound\"}",
        )
        .await;
        let err = client(socket)
            .post_empty::<serde_json::Value>("/v1/stop/web")
            .await
            .unwrap_err();
        let ClientError::Api { status, kind, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (status, kind, message.as_str()),
            (StatusCode::NOT_FOUND, ErrorKind::NotFound, "container/web not found")
        );
    }

    #[tokio::test]
    async fn error_answers_without_a_json_body_take_their_kind_from_the_status() {
        let (_dir, socket) = daemon_answering(b"HTTP/1.1 409 Conflict\r\ncontent-length: 0\r\n\r\n").await;
        let err = client(socket)
            .get::<serde_json::Value>("/v1/objects")
            .await
            .unwrap_err();
        let ClientError::Api { kind, message, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!((kind, message.as_str()), (ErrorKind::Conflict, "409 Conflict"));
    }

    #[tokio::test]
    async fn a_malformed_answer_is_an_http_error_not_a_departure() {
        let (_dir, socket) = daemon_answering(b"SMTP ready\r\n\r\n").await;
        let err = client(socket)
            .get::<serde_json::Value>("/v1/objects")
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Http(_)), "{err:?}");
    }

    #[test]
    fn segments_keep_every_byte_of_a_name_inside_the_segment() {
        assert_eq!(segment("web-1_a~"), "web-1_a~");
        assert_eq!(segment("web?x"), "web%3Fx");
        assert_eq!(segment("web#x"), "web%23x");
        assert_eq!(segment("web x"), "web%20x");
        assert_eq!(segment("web%00"), "web%2500");
        assert_eq!(segment("../web"), "%2E%2E%2Fweb");
        assert_eq!(segment("web\0"), "web%00");
        assert_eq!(segment("caf\u{e9}"), "caf%C3%A9");
    }

    #[tokio::test]
    async fn a_path_that_is_no_uri_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("berth.sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        let err = client(socket)
            .get::<serde_json::Value>("/v1/inspect/web x")
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::BadPath { .. }), "{err:?}");
        assert!(err.to_string().contains("\"/v1/inspect/web x\""), "{err}");
    }

    #[test]
    fn statuses_map_back_to_the_kinds_the_api_gives_them() {
        assert_eq!(kind_of_status(StatusCode::NOT_FOUND), ErrorKind::NotFound);
        assert_eq!(kind_of_status(StatusCode::CONFLICT), ErrorKind::Conflict);
        assert_eq!(kind_of_status(StatusCode::BAD_REQUEST), ErrorKind::Invalid);
        assert_eq!(kind_of_status(StatusCode::PAYLOAD_TOO_LARGE), ErrorKind::Invalid);
        assert_eq!(kind_of_status(StatusCode::UNPROCESSABLE_ENTITY), ErrorKind::Unavailable);
        assert_eq!(kind_of_status(StatusCode::INTERNAL_SERVER_ERROR), ErrorKind::Internal);
    }
}
