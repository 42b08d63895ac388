//! One way to reach a callee: where an INVITE goes and as whom.

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub uri: String,
    pub dest: SocketAddr,
    pub auth: Option<(String, String)>,
    pub caller_id: Option<String>,
    /// Trunk name, for the call record.
    pub via: Option<String>,
}

impl Route {
    /// Straight to an address: no credentials, the caller's ID.
    pub fn direct(uri: String, dest: SocketAddr) -> Route {
        Route {
            uri,
            dest,
            auth: None,
            caller_id: None,
            via: None,
        }
    }
}

/// Responses that mean "this carrier failed", not "this callee declined".
pub fn fails_over(code: u16) -> bool {
    code == 408 || (500..600).contains(&code)
}

/// A SIP URI with a numeric host: `sip:user@1.2.3.4:5060` -> the address.
pub fn uri_dest(uri: &str) -> Option<SocketAddr> {
    let rest = uri.strip_prefix("sip:")?;
    let host_port = rest.rsplit('@').next()?.split(';').next()?;
    if let Ok(addr) = host_port.parse::<SocketAddr>() {
        return Some(addr);
    }
    host_port
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 5060))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_destinations() {
        assert_eq!(
            uri_dest("sip:a@127.0.0.1:5070"),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(
            uri_dest("sip:a@127.0.0.1"),
            Some("127.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(
            uri_dest("sip:a@127.0.0.1:5070;transport=udp"),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(uri_dest("sip:a@example.com"), None);
        assert_eq!(uri_dest("tel:+1"), None);
    }
}
