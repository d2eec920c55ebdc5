//! Host ports for published ports that name none (Docker's `-p 80` and
//! `--publish-all`): the choice is pure given what is taken and a test of
//! whether the host holds a port; [`Reservations`] keeps what concurrent
//! starts chose until they record it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Proto;

/// Docker's ephemeral port range (its default; the kernel's
/// `ip_local_port_range` here too).
pub const EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

/// A reservation older than a start can take is stale.
const FRESH_FOR: Duration = Duration::from_secs(60);

/// One port a start publishes, as the chooser sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wish {
    pub proto: Proto,
    /// The one host address it is published on; every one when None.
    pub host_ip: Option<Ipv4Addr>,
    /// The host port; 0: choose one.
    pub host: u16,
    /// The host port the container had for it before, kept when still free.
    pub previous: Option<u16>,
}

/// The host port of each of `wishes`: a fixed one as it is; for one to
/// choose, its `previous` port when that is free, else the first free one
/// of [`EPHEMERAL`] from a point that `seed` varies. A port is free when it
/// is not in `taken`, not another wish's, and `free` says the host does not
/// hold it. `Err(i)`: no free port for `wishes[i]`.
pub fn choose(
    wishes: &[Wish],
    taken: &BTreeSet<(Proto, u16)>,
    seed: u32,
    mut free: impl FnMut(Option<Ipv4Addr>, u16, Proto) -> bool,
) -> Result<Vec<u16>, usize> {
    let span = u32::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
    let mut ports: Vec<u16> = wishes.iter().map(|w| w.host).collect();
    for (i, wish) in wishes.iter().enumerate() {
        if wish.host != 0 {
            continue;
        }
        // Spread apart, so that wishes of one start do not all probe from
        // the same point.
        let start = (seed.wrapping_add((i as u32).wrapping_mul(7919))) % span;
        let candidates = wish
            .previous
            .into_iter()
            .chain((0..span).map(|k| EPHEMERAL.start() + ((start + k) % span) as u16));
        let mut found = None;
        for port in candidates {
            let another_wants_it = wishes
                .iter()
                .zip(&ports)
                .any(|(w, &p)| p == port && w.proto == wish.proto);
            if taken.contains(&(wish.proto, port)) || another_wants_it {
                continue;
            }
            if free(wish.host_ip, port, wish.proto) {
                found = Some(port);
                break;
            }
        }
        ports[i] = found.ok_or(i)?;
    }
    Ok(ports)
}

/// Ephemeral ports handed to a start that has not recorded them yet, so
/// that two starts at once do not take the same one. Owned by the engine.
#[derive(Debug, Default)]
pub struct Reservations(Mutex<Vec<(Proto, u16, String, Instant)>>);

impl Reservations {
    /// [`choose`] for `owner`, around `taken` and what other starts
    /// reserved (fresh ones; `owner`'s own earlier ones are let go); the
    /// ports chosen are reserved for `owner`.
    pub fn choose(
        &self,
        owner: &str,
        wishes: &[Wish],
        taken: &BTreeSet<(Proto, u16)>,
        seed: u32,
        free: impl FnMut(Option<Ipv4Addr>, u16, Proto) -> bool,
    ) -> Result<Vec<u16>, usize> {
        // Held through the choice: a second start waits and then sees these.
        let mut held = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.retain(|(_, _, o, at)| at.elapsed() < FRESH_FOR && o != owner);
        let mut taken = taken.clone();
        taken.extend(held.iter().map(|(proto, port, _, _)| (*proto, *port)));
        let ports = choose(wishes, &taken, seed, free)?;
        let now = Instant::now();
        for (wish, port) in wishes.iter().zip(&ports).filter(|(w, _)| w.host == 0) {
            held.push((wish.proto, *port, owner.to_string(), now));
        }
        Ok(ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wish(proto: Proto, host: u16, previous: Option<u16>) -> Wish {
        Wish {
            proto,
            host_ip: None,
            host,
            previous,
        }
    }

    #[test]
    fn fixed_ports_stay_a_previous_port_is_kept_and_the_rest_come_from_the_range() {
        let wishes = [
            wish(Proto::Tcp, 8080, None),
            wish(Proto::Tcp, 0, Some(40000)),
            wish(Proto::Tcp, 0, None),
            wish(Proto::Udp, 0, None),
        ];
        let ports = choose(&wishes, &BTreeSet::new(), 0, |_, _, _| true).unwrap();
        assert_eq!(ports[0], 8080);
        assert_eq!(ports[1], 40000);
        assert!(EPHEMERAL.contains(&ports[2]) && EPHEMERAL.contains(&ports[3]));
        // Two wishes of one proto never get one port.
        assert_ne!(ports[1], ports[2]);
    }

    #[test]
    fn taken_held_and_other_wishes_ports_are_passed_over_and_a_full_range_names_the_wish() {
        let start = *EPHEMERAL.start();
        // Seed 0 starts the first wish at the range's start.
        let taken: BTreeSet<(Proto, u16)> = [(Proto::Tcp, start)].into();
        let mut probed = Vec::new();
        let ports = choose(&[wish(Proto::Tcp, 0, Some(start))], &taken, 0, |ip, port, proto| {
            probed.push((ip, port, proto));
            port != start + 1
        })
        .unwrap();
        // The previous port is taken, the next is held by a host process.
        assert_eq!(ports, [start + 2]);
        assert_eq!(probed.len(), 2, "a taken port is never probed: {probed:?}");
        // A fixed wish's port is not handed to another wish of its proto.
        let ports = choose(
            &[wish(Proto::Tcp, 0, None), wish(Proto::Tcp, start, None)],
            &BTreeSet::new(),
            0,
            |_, _, _| true,
        )
        .unwrap();
        assert_eq!(ports, [start + 1, start]);
        // Another proto's is no bar.
        let ports = choose(
            &[wish(Proto::Udp, 0, None), wish(Proto::Tcp, start, None)],
            &BTreeSet::new(),
            0,
            |_, _, _| true,
        )
        .unwrap();
        assert_eq!(ports, [start, start]);
        // Nothing free: the wish that found none is named.
        let err = choose(
            &[wish(Proto::Udp, 53, None), wish(Proto::Udp, 0, None)],
            &BTreeSet::new(),
            0,
            |_, _, _| false,
        );
        assert_eq!(err, Err(1));
    }

    #[test]
    fn concurrent_starts_get_different_ports_and_a_start_again_lets_its_own_go() {
        let r = Reservations::default();
        let one = [wish(Proto::Tcp, 0, None)];
        let a = r.choose("a", &one, &BTreeSet::new(), 0, |_, _, _| true).unwrap();
        let b = r.choose("b", &one, &BTreeSet::new(), 0, |_, _, _| true).unwrap();
        assert_ne!(a, b, "b chose while a had not recorded its port");
        // a starts again: its own reservation does not keep it from its port.
        let again = r.choose("a", &one, &BTreeSet::new(), 0, |_, _, _| true).unwrap();
        assert_eq!(again, a);
        // Fixed ports are not reserved (the store records them).
        let fixed = [wish(Proto::Tcp, 8080, None)];
        r.choose("c", &fixed, &BTreeSet::new(), 0, |_, _, _| true).unwrap();
        let held = r.0.lock().unwrap();
        assert_eq!(held.len(), 2);
        assert!(held.iter().all(|(_, port, _, _)| *port != 8080));
    }
}
