//! Where a plugin's HTTP may not go, whatever its host grants say: this
//! node's own services (the admin API, SIP, media ports) on any of the
//! machine's addresses, and link-local / cloud metadata addresses. A grant
//! that names exactly the address (or host) and port opens one of them, for
//! an operator who means it (`http:127.0.0.1:8080`).
//!
//! Names are resolved here and the request is pinned to the addresses that
//! were checked, so a name that resolves to a public address when checked
//! and to 127.0.0.1 when connected (DNS rebinding) cannot slip through.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The node's listening ports and the machine's addresses.
#[derive(Debug, Clone, Default)]
pub struct NetGuard {
    local_ips: Vec<IpAddr>,
    ports: Vec<u16>,
    rtp: (u16, u16),
}

impl NetGuard {
    /// `listening`: the node's TCP/UDP service addresses (HTTP, SIP);
    /// `rtp`: its media port range.
    pub fn new(listening: &[SocketAddr], rtp: (u16, u16)) -> NetGuard {
        let mut local_ips: Vec<IpAddr> = listening.iter().map(|a| a.ip()).collect();
        match if_addrs::get_if_addrs() {
            Ok(ifs) => local_ips.extend(ifs.into_iter().map(|i| i.ip())),
            Err(e) => tracing::warn!("listing network interfaces: {e}"),
        }
        local_ips.sort();
        local_ips.dedup();
        NetGuard {
            local_ips,
            ports: listening.iter().map(|a| a.port()).collect(),
            rtp,
        }
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || self.local_ips.contains(&ip)
    }

    /// Why a plugin may not connect to `addr` without an exact grant.
    pub fn refuses(&self, addr: SocketAddr) -> Option<&'static str> {
        let ip = canonical(addr.ip());
        if ip.is_unspecified() || ip.is_multicast() || is_broadcast(ip) {
            return Some("not a host address");
        }
        if is_link_local(ip) || is_metadata(ip) {
            return Some("a link-local or cloud metadata address");
        }
        let port = addr.port();
        let node_port = self.ports.contains(&port) || (self.rtp.0..=self.rtp.1).contains(&port);
        if node_port && self.is_local(ip) {
            return Some("this node's own service");
        }
        None
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// AWS's IPv6 metadata endpoint (the IPv4 one, 169.254.169.254, is link-local).
fn is_metadata(ip: IpAddr) -> bool {
    ip == IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_nodes_own_services_and_metadata_are_refused() {
        let g = NetGuard::new(&[a("0.0.0.0:5060"), a("127.0.0.1:8080")], (20000, 20099));
        assert!(g.refuses(a("127.0.0.1:8080")).is_some());
        assert!(g.refuses(a("127.0.0.2:5060")).is_some());
        assert!(g.refuses(a("127.0.0.1:20050")).is_some());
        assert!(g.refuses(a("[::ffff:127.0.0.1]:8080")).is_some());
        assert!(g.refuses(a("[::1]:8080")).is_some());
        assert!(g.refuses(a("169.254.169.254:80")).is_some());
        assert!(g.refuses(a("[fe80::1]:80")).is_some());
        assert!(g.refuses(a("[fd00:ec2::254]:80")).is_some());
        assert!(g.refuses(a("0.0.0.0:9000")).is_some());
        // A local service on another port, and other hosts, are the grants' business.
        assert!(g.refuses(a("127.0.0.1:9000")).is_none());
        assert!(g.refuses(a("192.0.2.10:8080")).is_none());
    }
}
