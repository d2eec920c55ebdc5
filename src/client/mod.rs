//! The API client: HTTP/1 over the daemon's unix socket. Starts a daemon in
//! the background when none answers.

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

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket and no daemon could be started.
    #[error("cannot reach the berth daemon at {socket}: {message}")]
    Unreachable { socket: PathBuf, message: String },
    /// The connection broke mid-request.
    #[error("talking to the daemon: {0}")]
    Http(#[from] hyper::Error),
    /// The daemon answered with an error.
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    /// The daemon answered with something unreadable.
    #[error("unreadable answer from the daemon: {0}")]
    Decode(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// How to start a daemon when none answers.
#[derive(Debug, Clone)]
pub struct DaemonSpawn {
    pub args: Vec<String>,
    pub log: PathBuf,
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
                let Some(spawn) = &self.spawn else {
                    return Err(ClientError::Unreachable {
                        socket: self.socket.clone(),
                        message: first.to_string(),
                    });
                };
                self.start_daemon(spawn).await
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
            Command::new(exe)
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

    /// Sends a request; returns the response with a streaming body.
    pub async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Response<Incoming>> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder().method(method).uri(path).header("host", "berth");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("static request parts are valid");
        let resp = sender.send_request(req).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            let message = serde_json::from_slice::<crate::wire::ErrorBody>(&bytes)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Api { status, message });
        }
        Ok(resp)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.send(Method::GET, path, None).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let resp = self.send(Method::POST, path, Some(serde_json::to_vec(body)?)).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Calls `each` for every line of a newline-delimited JSON stream.
    pub async fn stream<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        mut each: impl FnMut(T),
    ) -> Result<()> {
        let resp = self.send(method, path, body).await?;
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            let Some(data) = frame.data_ref() else { continue };
            buf.extend_from_slice(data);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                each(serde_json::from_slice(&line[..line.len() - 1])?);
            }
        }
        Ok(())
    }
}

fn tail_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
