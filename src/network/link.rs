//! Links, addresses and routes over rtnetlink, in process (no `ip`), and
//! berth's named network namespaces.
//!
//! A netlink socket belongs to the network namespace it was opened in, so
//! work inside a container's namespace runs on a short-lived thread of its
//! own that joins the namespace with setns(2) and opens its socket there
//! (as netavark does); a thread is never returned to a pool after setns.
//! Every call here is blocking; the engine calls it from `spawn_blocking`.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::path::Path;

use futures_util::stream::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkMacVlan, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::ipam::Subnet;
use super::NetworkError;

type Result<T> = std::result::Result<T, NetworkError>;

fn nl(action: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let action = action.into();
    move |e| NetworkError::Netlink {
        action,
        message: match e {
            rtnetlink::Error::NetlinkError(m) => std::io::Error::from_raw_os_error(-m.raw_code()).to_string(),
            other => other.to_string(),
        },
    }
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if -m.raw_code() == errno)
}

/// Runs `work` with a netlink handle on a thread of its own, in the network
/// namespace at `netns` (the host's when `None`), and waits for it.
pub fn with_handle<T, F, Fut>(netns: Option<&Path>, work: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                if let Some(path) = netns {
                    let file = File::open(path).map_err(|source| NetworkError::Io {
                        action: "open network namespace",
                        path: path.to_path_buf(),
                        source,
                    })?;
                    // Only this thread moves; it ends with this closure.
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| NetworkError::Io {
                        action: "join network namespace",
                        path: path.to_path_buf(),
                        source: e.into(),
                    })?;
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .map_err(|source| NetworkError::Io {
                        action: "start netlink runtime",
                        path: Default::default(),
                        source,
                    })?;
                rt.block_on(async move {
                    let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| NetworkError::Io {
                        action: "open netlink socket",
                        path: Default::default(),
                        source,
                    })?;
                    tokio::spawn(conn);
                    work(handle).await
                })
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetworkError::Netlink {
                    action: "netlink worker".into(),
                    message: "panicked".into(),
                })
            })
    })
}

/// Runs `work` with two netlink handles on one thread of its own: one in
/// the host's namespace (opened first) and one in the namespace at `netns`
/// (opened after the thread joined it), and waits for it. Making a link and
/// configuring it inside then costs one thread and one runtime, not two.
pub fn with_host_and_netns_handles<T, F, Fut>(netns: &Path, work: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle, Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    let open_err = |source| NetworkError::Io {
        action: "open netlink socket",
        path: Default::default(),
        source,
    };
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .map_err(|source| NetworkError::Io {
                        action: "start netlink runtime",
                        path: Default::default(),
                        source,
                    })?;
                // A netlink socket stays in the namespace it was opened in.
                let (host_conn, host, _) = rt.block_on(async { rtnetlink::new_connection() }).map_err(open_err)?;
                let file = File::open(netns).map_err(|source| NetworkError::Io {
                    action: "open network namespace",
                    path: netns.to_path_buf(),
                    source,
                })?;
                // Only this thread moves; it ends with this closure.
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| NetworkError::Io {
                    action: "join network namespace",
                    path: netns.to_path_buf(),
                    source: e.into(),
                })?;
                let (inside_conn, inside, _) = rt.block_on(async { rtnetlink::new_connection() }).map_err(open_err)?;
                rt.block_on(async move {
                    tokio::spawn(host_conn);
                    tokio::spawn(inside_conn);
                    work(host, inside).await
                })
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetworkError::Netlink {
                    action: "netlink worker".into(),
                    message: "panicked".into(),
                })
            })
    })
}

/// Makes a new network namespace and bind-mounts it at `path`, as
/// `ip netns add` does. An existing one is kept.
pub fn create_netns(path: &Path) -> Result<()> {
    if is_netns(path) {
        return Ok(());
    }
    let io = |action: &'static str| {
        let path = path.to_path_buf();
        move |source: std::io::Error| NetworkError::Io { action, path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create"))?;
    }
    File::create(path).map_err(io("create"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> std::io::Result<()> {
                // unshare(CLONE_NEWNET) moves this thread only; the mount is
                // made in the process's mount namespace, shared by all threads.
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    path,
                    None::<&str>,
                    nix::mount::MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                // Loopback is up in every namespace berth makes, as in
                // Docker's `none`. This thread is in the new namespace
                // already: one ioctl here, not another thread with a
                // netlink runtime of its own.
                set_lo_up(netns_socket()?.as_fd())
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("netns thread panicked")))
    })
    .map_err(io("make network namespace at"))
}

/// A socket in the calling thread's network namespace, for [`set_lo_up`]:
/// it stays in that namespace wherever the thread goes next, so a caller
/// can step into a namespace, make one, and step straight back.
pub fn netns_socket() -> std::io::Result<std::os::fd::OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked and owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) })
}

/// Sets `lo` up in the network namespace of `sock` (see [`netns_socket`]).
/// A new namespace has it down; Docker brings it up, and so does every
/// namespace berth makes or runs a container in. One ioctl, not netlink:
/// the container shim calls this while single-threaded, with no runtime.
pub fn set_lo_up(sock: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: a zeroed ifreq is a valid value; the name is "lo" plus its nul.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own, on a socket we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether `path` is a mounted network namespace.
pub fn is_netns(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Unmounts and removes the namespace file at `path`; a missing one is fine.
pub fn remove_netns(path: &Path) -> Result<()> {
    if is_netns(path) {
        nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).map_err(|e| NetworkError::Io {
            action: "unmount network namespace",
            path: path.to_path_buf(),
            source: e.into(),
        })?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetworkError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(nl(format!("look up link {name}"))(e)),
    }
}

/// Whether a link `name` exists in the host's namespace.
pub fn link_exists(name: &str) -> Result<bool> {
    let name = name.to_string();
    with_handle(None, |h| async move { Ok(index_of(&h, &name).await?.is_some()) })
}

/// Every link name in the host's namespace.
pub fn link_names() -> Result<Vec<String>> {
    with_handle(None, |h| async move {
        let mut out = Vec::new();
        let mut links = h.link().get().execute();
        while let Some(msg) = links.try_next().await.map_err(nl("list links"))? {
            out.extend(link_name(&msg));
        }
        Ok(out)
    })
}

fn link_name(msg: &LinkMessage) -> Option<String> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// What a bridge should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub name: String,
    /// Shown by `ip link` (and found by the leak check): says whose it is.
    pub alias: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub mtu: Option<u32>,
}

/// A stable, locally administered unicast MAC for bridge `name`.
fn bridge_mac(name: &str) -> [u8; 6] {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(name.as_bytes());
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

/// Makes the bridge if it is missing and gives it its gateway address and
/// MTU; brings it up. Repairs a bridge that lost its address.
pub fn ensure_bridge(cfg: &BridgeConfig) -> Result<()> {
    let owned = cfg.clone();
    with_handle(None, |h| async move {
        let cfg = owned;
        let name = &cfg.name;
        let index = match index_of(&h, name).await? {
            Some(i) => i,
            None => {
                // A MAC of its own: a bridge without one takes its lowest
                // port's, so a container replaced on it would change the
                // gateway's MAC under its peers' ARP caches (and cut them
                // off, DNS too, until those entries expire).
                let mac = bridge_mac(name);
                let mut b = LinkBridge::new(name).append_extra_attribute(LinkAttribute::Address(mac.to_vec()));
                if let Some(mtu) = cfg.mtu {
                    b = b.mtu(mtu);
                }
                h.link()
                    .add(b.build())
                    .execute()
                    .await
                    .map_err(nl(format!("create bridge {name}")))?;
                index_of(&h, name).await?.ok_or_else(|| NetworkError::Netlink {
                    action: format!("create bridge {name}"),
                    message: "it is not there after creation".into(),
                })?
            }
        };
        let has = addresses(&h, index).await?;
        if !has.contains(&(cfg.gateway, cfg.subnet.prefix)) {
            h.address()
                .add(index, IpAddr::V4(cfg.gateway), cfg.subnet.prefix)
                .replace()
                .execute()
                .await
                .map_err(nl(format!("add address {} to {name}", cfg.gateway)))?;
        }
        // The kernel ignores IFLA_IFALIAS in a link's creation; set here,
        // it marks the bridge as berth's (`ip -o link` shows it).
        h.link()
            .set(
                LinkUnspec::new_with_index(index)
                    .up()
                    .append_extra_attribute(LinkAttribute::IfAlias(cfg.alias.clone()))
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("set {name} up")))
    })?;
    // Published ports answer on 127.0.0.1: DNAT of locally sent packets to a
    // container needs loopback sources routable out of the bridge.
    let sysctl = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", cfg.name);
    std::fs::write(&sysctl, "1").map_err(|source| NetworkError::Io {
        action: "write",
        path: sysctl.into(),
        source,
    })
}

async fn addresses(h: &Handle, index: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
    use rtnetlink::packet_route::address::AddressAttribute;
    let mut out = Vec::new();
    let mut addrs = h.address().get().set_link_index_filter(index).execute();
    while let Some(msg) = addrs.try_next().await.map_err(nl("list addresses"))? {
        for a in &msg.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                out.push((*ip, msg.header.prefix_len));
            }
        }
    }
    Ok(out)
}

/// Whether bridge `name` exists, is up and holds its gateway address.
pub fn bridge_ok(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<bool> {
    let name = name.to_string();
    with_handle(None, |h| async move {
        let mut links = h.link().get().match_name(name.clone()).execute();
        let msg = match links.try_next().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(false),
            Err(e) if is_errno(&e, libc::ENODEV) => return Ok(false),
            Err(e) => return Err(nl(format!("look up link {name}"))(e)),
        };
        let up = msg.header.flags.contains(rtnetlink::packet_route::link::LinkFlags::Up);
        Ok(up && addresses(&h, msg.header.index).await?.contains(&(gateway, prefix)))
    })
}

/// Whether the host end `veth` exists, is up and is a port of `bridge`.
pub fn veth_on_bridge(veth: &str, bridge: &str) -> Result<bool> {
    let (veth, bridge) = (veth.to_string(), bridge.to_string());
    with_handle(None, |h| async move {
        let Some(bridge_index) = index_of(&h, &bridge).await? else {
            return Ok(false);
        };
        let mut links = h.link().get().match_name(veth.clone()).execute();
        let msg = match links.try_next().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(false),
            Err(e) if is_errno(&e, libc::ENODEV) => return Ok(false),
            Err(e) => return Err(nl(format!("look up link {veth}"))(e)),
        };
        let up = msg.header.flags.contains(rtnetlink::packet_route::link::LinkFlags::Up);
        let on_bridge = msg
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Controller(i) if *i == bridge_index));
        Ok(up && on_bridge)
    })
}

/// Whether every one of `veths` exists, is up and is a port of `bridge`,
/// from one dump of the host's links rather than a lookup each.
pub fn veths_on_bridge(veths: &[String], bridge: &str) -> Result<bool> {
    let wanted: std::collections::HashSet<&str> = veths.iter().map(String::as_str).collect();
    let bridge = bridge.to_string();
    // (up, controller) of each wanted veth, and the bridge's index.
    let (found, bridge_index) = with_handle(None, |h| async move {
        let mut found: HashMap<String, (bool, Option<u32>)> = HashMap::new();
        let mut bridge_index = None;
        let mut links = h.link().get().execute();
        while let Some(msg) = links.try_next().await.map_err(nl("list links"))? {
            let Some(name) = link_name(&msg) else { continue };
            if name == bridge {
                bridge_index = Some(msg.header.index);
            }
            if wanted.contains(name.as_str()) {
                let up = msg.header.flags.contains(rtnetlink::packet_route::link::LinkFlags::Up);
                let controller = msg.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Controller(i) => Some(*i),
                    _ => None,
                });
                found.insert(name, (up, controller));
            }
        }
        Ok((found, bridge_index))
    })?;
    let Some(bridge_index) = bridge_index else {
        return Ok(false);
    };
    Ok(veths
        .iter()
        .all(|v| found.get(v).is_some_and(|(up, c)| *up && *c == Some(bridge_index))))
}

/// Deletes link `name` in the host's namespace; a missing one is fine.
pub fn delete_link(name: &str) -> Result<()> {
    let name = name.to_string();
    with_handle(None, |h| async move {
        if let Some(index) = index_of(&h, &name).await? {
            match h.link().del(index).execute().await {
                Err(e) if !is_errno(&e, libc::ENODEV) => return Err(nl(format!("delete link {name}"))(e)),
                _ => {}
            }
        }
        Ok(())
    })
}

/// The host index of link `name`, if there is one (one ioctl, no netlink).
pub fn host_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: `name` is a nul-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Whether host link `index` still exists and is still called `name`.
pub fn index_is(index: u32, name: &str) -> bool {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname writes at most.
    let found = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if found.is_null() {
        return false;
    }
    let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    &buf[..len] == name.as_bytes()
}

/// Deletes host link `index` if it is still called `name` (a name can be
/// reused by a newer link, which must stay); a missing one is fine.
pub fn delete_index_if_named(index: u32, name: &str) -> Result<()> {
    if !index_is(index, name) {
        return Ok(());
    }
    let name = name.to_string();
    with_handle(None, |h| async move {
        match h.link().del(index).execute().await {
            Err(e) if !is_errno(&e, libc::ENODEV) => Err(nl(format!("delete link {name}"))(e)),
            _ => Ok(()),
        }
    })
}

/// Deletes interface `name` inside the namespace at `netns` (a veth end
/// takes its peer with it); a missing one is fine.
pub fn delete_link_in(netns: &Path, name: &str) -> Result<()> {
    let name = name.to_string();
    with_handle(Some(netns), |h| async move {
        if let Some(index) = index_of(&h, &name).await? {
            match h.link().del(index).execute().await {
                Err(e) if !is_errno(&e, libc::ENODEV) => return Err(nl(format!("delete link {name}"))(e)),
                _ => {}
            }
        }
        Ok(())
    })
}

/// One interface of a container on a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethConfig {
    /// Host end, enslaved to `bridge`.
    pub host_name: String,
    pub alias: String,
    pub bridge: String,
    /// Name inside the namespace: `eth0`, `eth1`, …
    pub ifname: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// The default route goes through the first network's gateway; `None`
    /// for further networks and internal ones.
    pub default_gateway: Option<Ipv4Addr>,
    pub mtu: Option<u32>,
    /// The interface's MAC address; the kernel's random one when None.
    pub mac: Option<[u8; 6]>,
}

/// Makes a veth pair whose container end is created straight inside the
/// namespace at `netns` (moved by fd) under its final name, enslaves the host
/// end to the bridge, and sets the address, MTU and default route inside.
/// A failure removes the pair.
pub fn attach_veth(netns: &Path, cfg: &VethConfig) -> Result<()> {
    let result = attach_inner(netns, cfg);
    if result.is_err() {
        let _ = delete_link(&cfg.host_name);
    }
    result
}

/// Makes a macvlan (bridge mode) on the parent `cfg.bridge`, created
/// straight inside the namespace at `netns` as `cfg.ifname`, and configures
/// it as [`attach_veth`] does. Nothing of it is left in the host's namespace:
/// it goes with the namespace.
pub fn attach_macvlan(netns: &Path, cfg: &VethConfig) -> Result<()> {
    let ns = File::open(netns).map_err(|source| NetworkError::Io {
        action: "open network namespace",
        path: netns.to_path_buf(),
        source,
    })?;
    let c = cfg.clone();
    let ns_fd = ns.as_raw_fd();
    with_host_and_netns_handles(netns, move |h, inside| async move {
        let parent = index_of(&h, &c.bridge).await?.ok_or_else(|| NetworkError::Netlink {
            action: format!("make macvlan {} on {}", c.ifname, c.bridge),
            message: "the parent interface does not exist".into(),
        })?;
        let mut link =
            LinkMacVlan::new(&c.ifname, parent, rtnetlink::packet_route::link::MacVlanMode::Bridge).setns_by_fd(ns_fd);
        if let Some(mtu) = c.mtu {
            link = link.mtu(mtu);
        }
        h.link()
            .add(link.build())
            .execute()
            .await
            .map_err(nl(format!("make macvlan {} on {}", c.ifname, c.bridge)))?;
        configure_inside(&inside, &c).await
    })
}

fn attach_inner(netns: &Path, cfg: &VethConfig) -> Result<()> {
    let ns = File::open(netns).map_err(|source| NetworkError::Io {
        action: "open network namespace",
        path: netns.to_path_buf(),
        source,
    })?;
    let c = cfg.clone();
    let ns_fd = ns.as_raw_fd();
    with_host_and_netns_handles(netns, move |h, inside| async move {
        // A leftover of a crashed attempt would make the add fail.
        if let Some(old) = index_of(&h, &c.host_name).await? {
            let _ = h.link().del(old).execute().await;
        }
        let bridge = index_of(&h, &c.bridge).await?.ok_or_else(|| NetworkError::Netlink {
            action: format!("attach {} to {}", c.host_name, c.bridge),
            message: "the bridge does not exist".into(),
        })?;
        let mut peer = LinkUnspec::new_with_name(&c.ifname).setns_by_fd(ns_fd);
        if let Some(mtu) = c.mtu {
            peer = peer.mtu(mtu);
        }
        let mut veth = LinkVeth::new(&c.host_name, &c.ifname)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .controller(bridge)
            .up();
        if let Some(mtu) = c.mtu {
            veth = veth.mtu(mtu);
        }
        h.link()
            .add(veth.build())
            .execute()
            .await
            .map_err(nl(format!("create veth {}", c.host_name)))?;
        // Ignored in the creation (see `ensure_bridge`).
        h.link()
            .set(
                LinkUnspec::new_with_name(&c.host_name)
                    .append_extra_attribute(LinkAttribute::IfAlias(c.alias.clone()))
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("name veth {} as berth's", c.host_name)))?;
        configure_inside(&inside, &c).await
    })
}

/// Address, up and default route of `c.ifname`, through a handle opened
/// inside the namespace.
async fn configure_inside(h: &Handle, c: &VethConfig) -> Result<()> {
    let index = index_of(h, &c.ifname).await?.ok_or_else(|| NetworkError::Netlink {
        action: format!("configure {}", c.ifname),
        message: "it is not in the namespace".into(),
    })?;
    h.address()
        .add(index, IpAddr::V4(c.address), c.prefix)
        .replace()
        .execute()
        .await
        .map_err(nl(format!("add address {} to {}", c.address, c.ifname)))?;
    let mut link = LinkUnspec::new_with_index(index).up();
    if let Some(mac) = c.mac {
        // Set while it comes up: a down interface takes any unicast address.
        link = link.address(mac.to_vec());
    }
    h.link()
        .set(link.build())
        .execute()
        .await
        .map_err(nl(format!("set {} up", c.ifname)))?;
    if let Some(gw) = c.default_gateway {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gw)
            .output_interface(index)
            .build();
        h.route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(nl(format!("add default route via {gw}")))?;
    }
    Ok(())
}

/// IPv4 destinations routed on the host (main table), for IPAM to avoid.
pub fn host_routes() -> Result<Vec<Subnet>> {
    with_handle(None, |h| async move {
        let mut out = Vec::new();
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut routes = h.route().get(query).execute();
        while let Some(msg) = routes.try_next().await.map_err(nl("list routes"))? {
            let prefix = msg.header.destination_prefix_length;
            for a in &msg.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a {
                    out.push(Subnet::new(*ip, prefix));
                }
            }
        }
        Ok(out)
    })
}

/// IPv4 addresses of interfaces inside the namespace at `netns`, by name.
pub fn netns_links(netns: &Path) -> Result<Vec<String>> {
    with_handle(Some(netns), |h| async move {
        let mut out = Vec::new();
        let mut links = h.link().get().execute();
        while let Some(msg) = links.try_next().await.map_err(nl("list links"))? {
            out.extend(link_name(&msg));
        }
        Ok(out)
    })
}
