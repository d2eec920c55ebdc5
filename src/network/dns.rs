//! The embedded DNS server of each network, as podman's aardvark-dns: a
//! UDP socket of its own on the bridge's gateway address, port 53. Names of
//! containers on that network (and only that network) answer with their
//! addresses there; other names are forwarded to the host's resolvers,
//! except on internal networks. Records live in memory and are replaced
//! whole whenever a container comes or goes, so a replaced container's new
//! address answers at once.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

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

struct Server {
    records: Arc<RwLock<Records>>,
    task: tokio::task::JoinHandle<()>,
    gateway: Ipv4Addr,
}

/// The running servers of one daemon, by network.
#[derive(Default)]
pub struct Dns {
    servers: Mutex<HashMap<String, Server>>,
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
    /// same address is kept). Must be called inside a tokio runtime.
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
        let socket = UdpSocket::from_std(std_socket).map_err(|source| NetworkError::Io {
            action: "register DNS socket",
            path: addr.to_string().into(),
            source,
        })?;
        let records = Arc::new(RwLock::new(records));
        let task = tokio::spawn(serve(Arc::new(socket), records.clone(), upstream));
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

async fn serve(socket: Arc<UdpSocket>, records: Arc<RwLock<Records>>, upstream: Vec<SocketAddr>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
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
                // Forwarded concurrently: a slow upstream must not hold up
                // the names of the network.
                let socket = socket.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let reply = match forward(&query, &upstream).await {
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

async fn forward(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) = tokio::time::timeout(FORWARD_TIMEOUT, sock.recv_from(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
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
