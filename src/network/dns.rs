//! The embedded DNS server of each network, as podman's aardvark-dns: a
//! UDP socket of its own on the bridge's gateway address, port 53. Names of
//! containers on that network (and only that network) answer with their
//! addresses there; other names are forwarded to the host's resolvers,
//! except on internal networks. Records live in memory and are replaced
//! whole whenever a container comes or goes, so a replaced container's new
//! address answers at once.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use super::NetworkError;

/// Name → addresses on one network. A key made by [`scoped`] answers only
/// the one client it names: a container on several networks asks the
/// server of its first one, which knows its other networks' names for it.
pub type Records = HashMap<String, Vec<Ipv4Addr>>;

/// The key of a name that answers only queries from `client`.
pub fn scoped(client: Ipv4Addr, name: &str) -> String {
    format!("{client}/{name}")
}

const TTL: u32 = 5;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// Forwards in flight on one network. Each holds a socket (an fd) for up to
/// FORWARD_TIMEOUT per upstream: beyond this, SERVFAIL at once, so a flood
/// of queries from a container costs neither fds nor memory past it.
pub const FORWARDS_PER_NETWORK: usize = 256;
/// And on all networks of the daemon together, whatever their number.
pub const FORWARDS_PER_DAEMON: usize = 512;
/// How often a server logs the queries and replies it turned away.
const TALLY_EVERY: Duration = Duration::from_secs(5);

struct Server {
    records: Arc<RwLock<Records>>,
    task: tokio::task::JoinHandle<()>,
    gateway: Ipv4Addr,
}

/// The running servers of one daemon, by network.
pub struct Dns {
    servers: Mutex<HashMap<String, Server>>,
    /// Shared by every server: see [`FORWARDS_PER_DAEMON`].
    forwards: Arc<Semaphore>,
    /// The thread every server of this daemon runs on, made with the first.
    thread: std::sync::OnceLock<std::io::Result<ServerThread>>,
}

/// A thread of its own running a single-threaded runtime for the servers:
/// on the daemon's runtime, a lookup from a container waited behind API
/// requests, reconcile passes and their synchronous SQLite and file work
/// (issue 23: a large apply stalled name resolution inside containers).
/// Dropping it ends the thread, and with it every server.
struct ServerThread {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ServerThread {
    fn spawn() -> std::io::Result<ServerThread> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("berth-dns".into())
            // Small: the servers hold their buffers on the heap.
            .stack_size(256 * 1024)
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                })
            })?;
        Ok(ServerThread { handle, _stop: stop })
    }
}

impl Default for Dns {
    fn default() -> Dns {
        Dns {
            servers: Default::default(),
            forwards: Arc::new(Semaphore::new(FORWARDS_PER_DAEMON)),
            thread: std::sync::OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Entries are only inserted and removed whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dns {
    /// Starts the server of `network` on `gateway:53` (a running one on the
    /// same address is kept), on the servers' own thread.
    pub fn start(
        &self,
        network: &str,
        gateway: Ipv4Addr,
        upstream: Vec<SocketAddr>,
        records: Records,
    ) -> Result<(), NetworkError> {
        let mut servers = lock(&self.servers);
        if let Some(s) = servers.get(network) {
            if s.gateway == gateway && !s.task.is_finished() {
                *s.records.write().unwrap_or_else(|p| p.into_inner()) = records;
                return Ok(());
            }
        }
        if let Some(old) = servers.remove(network) {
            old.task.abort();
        }
        let addr = SocketAddr::from((gateway, 53));
        let std_socket = std::net::UdpSocket::bind(addr).map_err(|source| NetworkError::Io {
            action: "bind DNS server on",
            path: addr.to_string().into(),
            source,
        })?;
        std_socket.set_nonblocking(true).map_err(|source| NetworkError::Io {
            action: "set nonblocking",
            path: addr.to_string().into(),
            source,
        })?;
        let thread = self
            .thread
            .get_or_init(ServerThread::spawn)
            .as_ref()
            .map_err(|e| NetworkError::Io {
                action: "start the DNS thread for",
                path: addr.to_string().into(),
                source: std::io::Error::new(e.kind(), e.to_string()),
            })?;
        // Registered with the servers' runtime, whose thread polls it.
        let _entered = thread.handle.enter();
        let socket = UdpSocket::from_std(std_socket).map_err(|source| NetworkError::Io {
            action: "register DNS socket",
            path: addr.to_string().into(),
            source,
        })?;
        let records = Arc::new(RwLock::new(records));
        let limits = Limits {
            network: Arc::new(Semaphore::new(FORWARDS_PER_NETWORK)),
            daemon: self.forwards.clone(),
        };
        let task = thread.handle.spawn(serve(
            network.to_string(),
            Arc::new(socket),
            records.clone(),
            upstream,
            limits,
        ));
        servers.insert(network.to_string(), Server { records, task, gateway });
        Ok(())
    }

    /// Replaces the records of `network`'s server, if it runs.
    pub fn set_records(&self, network: &str, records: Records) {
        if let Some(s) = lock(&self.servers).get(network) {
            *s.records.write().unwrap_or_else(|p| p.into_inner()) = records;
        }
    }

    pub fn running(&self, network: &str) -> bool {
        lock(&self.servers).get(network).is_some_and(|s| !s.task.is_finished())
    }

    pub fn stop(&self, network: &str) {
        if let Some(s) = lock(&self.servers).remove(network) {
            s.task.abort();
        }
    }
}

/// A resolver as `--dns-upstream` takes it: `IP` (port 53) or `IP:PORT`.
pub fn parse_upstream(text: &str) -> Result<SocketAddr, NetworkError> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| NetworkError::Invalid(format!("DNS upstream `{text}`: expected IP or IP:PORT")))
}

/// Upstream resolvers from resolv.conf text (the host's, read in the host's
/// namespace, so loopback resolvers are reachable).
pub fn upstream_of(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|s| s.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The bounds on forwards in flight a server takes a permit of each from.
#[derive(Clone)]
pub struct Limits {
    pub network: Arc<Semaphore>,
    pub daemon: Arc<Semaphore>,
}

/// What a server turned away, counted and logged every [`TALLY_EVERY`]: a
/// flood must not flood the log as well, and nothing goes unsaid.
#[derive(Default)]
pub struct Tally {
    /// Queries answered SERVFAIL because too many forwards were in flight.
    pub busy: AtomicU64,
    /// Datagrams from an upstream's address that were not the answer to
    /// the query sent (another ID, not a response, too short).
    pub unmatched: AtomicU64,
}

impl Tally {
    fn log(&self, network: &str) {
        let busy = self.busy.swap(0, Ordering::Relaxed);
        let unmatched = self.unmatched.swap(0, Ordering::Relaxed);
        if busy > 0 {
            tracing::warn!(
                "DNS of network/{network}: {busy} queries answered SERVFAIL, {FORWARDS_PER_NETWORK} forwards \
                 per network ({FORWARDS_PER_DAEMON} per daemon) already in flight; a container may be flooding it"
            );
        }
        if unmatched > 0 {
            tracing::warn!(
                "DNS of network/{network}: {unmatched} datagrams from an upstream ignored: not the answer to \
                 the query sent (wrong ID or not a response)"
            );
        }
    }
}

async fn serve(
    network: String,
    socket: Arc<UdpSocket>,
    records: Arc<RwLock<Records>>,
    upstream: Vec<SocketAddr>,
    limits: Limits,
) {
    let tally = Arc::new(Tally::default());
    let mut every = tokio::time::interval(TALLY_EVERY);
    let mut buf = vec![0u8; 4096];
    loop {
        let got = tokio::select! {
            got = socket.recv_from(&mut buf) => got,
            _ = every.tick() => {
                tally.log(&network);
                continue;
            }
        };
        let Ok((n, peer)) = got else {
            continue;
        };
        let query = buf[..n].to_vec();
        let local = {
            let records = records.read().unwrap_or_else(|p| p.into_inner());
            answer(&query, &records, Some(peer.ip()))
        };
        match local {
            Answer::Reply(bytes) => {
                let _ = socket.send_to(&bytes, peer).await;
            }
            Answer::Forward => {
                let permits = limits
                    .network
                    .clone()
                    .try_acquire_owned()
                    .and_then(|n| Ok((n, limits.daemon.clone().try_acquire_owned()?)));
                let Ok(permits) = permits else {
                    tally.busy.fetch_add(1, Ordering::Relaxed);
                    if let Some(bytes) = refuse(&query, ResponseCode::ServFail) {
                        let _ = socket.send_to(&bytes, peer).await;
                    }
                    continue;
                };
                // Forwarded concurrently: a slow upstream must not hold up
                // the names of the network.
                let socket = socket.clone();
                let upstream = upstream.clone();
                let tally = tally.clone();
                tokio::spawn(async move {
                    let _permits = permits;
                    let reply = match forward(&query, &upstream, &tally).await {
                        Some(bytes) => bytes,
                        None => match refuse(&query, ResponseCode::ServFail) {
                            Some(bytes) => bytes,
                            None => return,
                        },
                    };
                    let _ = socket.send_to(&reply, peer).await;
                });
            }
            Answer::Drop => {}
        }
    }
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Reply(Vec<u8>),
    Forward,
    Drop,
}

/// The network's own names, matched case-insensitively, with or without
/// the trailing dot; anything else is forwarded. Pure.
pub fn answer(query: &[u8], records: &Records, client: Option<std::net::IpAddr>) -> Answer {
    let Ok(req) = Message::from_vec(query) else {
        return Answer::Drop;
    };
    let Some(q) = req.queries().first() else {
        return Answer::Drop;
    };
    let name = q.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let scoped_to_client = || match client {
        Some(std::net::IpAddr::V4(ip)) => records.get(&scoped(ip, &name)),
        _ => None,
    };
    let Some(addresses) = records.get(&name).or_else(scoped_to_client) else {
        return Answer::Forward;
    };
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .set_response_code(ResponseCode::NoError)
        .add_query(q.clone());
    if q.query_type() == RecordType::A || q.query_type() == RecordType::ANY {
        for ip in addresses {
            resp.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(*ip))));
        }
    }
    match resp.to_vec() {
        Ok(bytes) => Answer::Reply(bytes),
        Err(_) => Answer::Drop,
    }
}

fn refuse(query: &[u8], code: ResponseCode) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_response_code(code);
    for q in req.queries() {
        resp.add_query(q.clone());
    }
    resp.to_vec().ok()
}

/// A transaction ID nobody on the host can predict (getrandom).
fn random_id() -> [u8; 2] {
    let mut id = [0u8; 2];
    // SAFETY: getrandom(2) writes at most `id.len()` bytes into a buffer we own.
    let n = unsafe { libc::getrandom(id.as_mut_ptr().cast(), id.len(), 0) };
    if n != id.len() as isize {
        // Never short for 2 bytes once the pool is ready; the kernel's
        // socket port is then the only secret, as before.
        id = (std::process::id() as u16 ^ std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.subsec_nanos() as u16))
            .to_be_bytes();
    }
    id
}

/// The answer to `query` from the first upstream that gives one, with the
/// client's ID. Each upstream is asked on a connected socket (the kernel
/// passes only datagrams from its address and port) under a fresh random
/// ID; anything else that arrives is counted and waited past, to the
/// timeout: a container spraying datagrams at the daemon's ports must guess
/// both the port and the ID to answer in the upstream's place.
pub async fn forward(query: &[u8], upstream: &[SocketAddr], tally: &Tally) -> Option<Vec<u8>> {
    let client_id: [u8; 2] = query.get(..2)?.try_into().ok()?;
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.connect(server).await.is_err() {
            continue;
        }
        let id = random_id();
        let mut sent = query.to_vec();
        sent[..2].copy_from_slice(&id);
        if sock.send(&sent).await.is_err() {
            continue;
        }
        let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
        let mut buf = vec![0u8; 4096];
        // Ends at the deadline, or on an error (ICMP port unreachable from
        // the server): the next server is asked.
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            // A full header, this ID, the QR (response) bit.
            if n >= 12 && buf[..2] == id && buf[2] & 0x80 != 0 {
                buf.truncate(n);
                buf[..2].copy_from_slice(&client_id);
                return Some(buf);
            }
            tally.unmatched.fetch_add(1, Ordering::Relaxed);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, kind: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_str(name).unwrap(), kind));
        m.to_vec().unwrap()
    }

    #[test]
    fn the_networks_names_answer_and_others_are_forwarded() {
        let records: Records = [("web".to_string(), vec![Ipv4Addr::new(10, 89, 0, 2)])].into();
        let Answer::Reply(bytes) = answer(&query("WEB.", RecordType::A), &records, None) else {
            panic!("web must answer locally");
        };
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.id(), 7);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(m.answers().len(), 1);
        assert_eq!(m.answers()[0].data(), &RData::A(A(Ipv4Addr::new(10, 89, 0, 2))));
        // Known name, no IPv6: an empty answer, not a forward.
        let Answer::Reply(bytes) = answer(&query("web", RecordType::AAAA), &records, None) else {
            panic!("AAAA of a known name answers locally");
        };
        assert!(Message::from_vec(&bytes).unwrap().answers().is_empty());
        assert_eq!(
            answer(&query("example.org.", RecordType::A), &records, None),
            Answer::Forward
        );
        assert_eq!(answer(b"junk", &records, None), Answer::Drop);

        // A name of another network answers only the client it is scoped to.
        let mut records = records;
        let client = Ipv4Addr::new(10, 89, 0, 3);
        records.insert(scoped(client, "db"), vec![Ipv4Addr::new(10, 90, 0, 5)]);
        let db = query("db", RecordType::A);
        assert!(matches!(answer(&db, &records, Some(client.into())), Answer::Reply(_)));
        let stranger = Some(Ipv4Addr::new(10, 89, 0, 4).into());
        assert_eq!(answer(&db, &records, stranger), Answer::Forward);
    }

    /// A server of the module's own on an ephemeral port of 127.0.0.1.
    async fn server_on_loopback(upstream: SocketAddr, limits: Limits) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let records = Arc::new(RwLock::new(Records::new()));
        tokio::spawn(serve("t".into(), Arc::new(socket), records, vec![upstream], limits));
        addr
    }

    #[tokio::test]
    async fn the_upstream_sees_a_random_id_and_the_client_gets_its_own_back() {
        let upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = upstream.local_addr().unwrap();
        let fake = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = upstream.recv_from(&mut buf).unwrap();
            let mut reply = Message::from_vec(&buf[..n]).unwrap();
            reply.set_message_type(MessageType::Response);
            let id = reply.id();
            // Another ID, a query (not a response), a runt: none is the answer.
            let mut wrong = reply.clone();
            wrong.set_id(id ^ 0x8000);
            let mut query_back = reply.clone();
            query_back.set_message_type(MessageType::Query);
            for junk in [
                wrong.to_vec().unwrap(),
                query_back.to_vec().unwrap(),
                id.to_be_bytes().to_vec(),
            ] {
                upstream.send_to(&junk, from).unwrap();
            }
            reply.set_response_code(ResponseCode::Refused);
            upstream.send_to(&reply.to_vec().unwrap(), from).unwrap();
            id
        });
        let tally = Tally::default();
        let got = forward(&query("example.org", RecordType::A), &[addr], &tally)
            .await
            .expect("the upstream's answer");
        let m = Message::from_vec(&got).unwrap();
        assert_eq!((m.id(), m.response_code()), (7, ResponseCode::Refused));
        let _ = fake.join().unwrap();
        assert_eq!(tally.unmatched.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn beyond_the_daemons_bound_a_query_of_another_network_gets_servfail_at_once() {
        // An upstream that never answers: forwards stay in flight.
        let blackhole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let upstream = blackhole.local_addr().unwrap();
        let daemon = Arc::new(Semaphore::new(2));
        let limits = || Limits {
            network: Arc::new(Semaphore::new(2)),
            daemon: daemon.clone(),
        };
        let first = server_on_loopback(upstream, limits()).await;
        let second = server_on_loopback(upstream, limits()).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..2 {
            client.send_to(&query("a.example", RecordType::A), first).await.unwrap();
        }
        // Both of the daemon's permits taken by the first network's forwards.
        let taken = tokio::time::timeout(FORWARD_TIMEOUT, async {
            while daemon.available_permits() > 0 {
                tokio::task::yield_now().await;
            }
        });
        taken.await.expect("two forwards in flight");
        client
            .send_to(&query("b.example", RecordType::A), second)
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let (n, from) = tokio::time::timeout(FORWARD_TIMEOUT / 2, client.recv_from(&mut buf))
            .await
            .expect("SERVFAIL before any forward times out")
            .unwrap();
        assert_eq!(from, second);
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!((m.id(), m.response_code()), (7, ResponseCode::ServFail));
        drop(blackhole);
    }

    #[test]
    fn an_upstream_flag_is_an_ip_with_an_optional_port() {
        assert_eq!(parse_upstream("127.0.0.9").unwrap(), "127.0.0.9:53".parse().unwrap());
        assert_eq!(
            parse_upstream("127.0.0.9:5353").unwrap(),
            "127.0.0.9:5353".parse().unwrap()
        );
        assert!(parse_upstream("dns.example")
            .unwrap_err()
            .to_string()
            .contains("expected IP or IP:PORT"));
    }

    #[test]
    fn upstreams_come_from_resolv_conf() {
        let up = upstream_of("nameserver 127.0.0.53\n# x\nnameserver 192.0.2.1\nsearch a\n");
        assert_eq!(up, ["127.0.0.53:53".parse().unwrap(), "192.0.2.1:53".parse().unwrap()]);
    }
}
