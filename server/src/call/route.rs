//! One way to reach a callee: where an INVITE goes and as whom.

use std::net::{IpAddr, SocketAddr};

/// Where a leg goes: a SIP request URI and the address the INVITE is sent
/// to, or an agent's browser (a WebRTC leg through the agents' WebSockets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    Sip { uri: String, dest: SocketAddr },
    Browser { user: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub reach: Reach,
    pub auth: Option<(String, String)>,
    pub caller_id: Option<String>,
    /// Trunk name, for the call record.
    pub via: Option<String>,
}

impl Route {
    /// Straight to an address: no credentials, the caller's ID.
    pub fn direct(uri: String, dest: SocketAddr) -> Route {
        Route {
            reach: Reach::Sip { uri, dest },
            auth: None,
            caller_id: None,
            via: None,
        }
    }

    /// An agent logged in from a browser.
    pub fn browser(user: &str) -> Route {
        Route {
            reach: Reach::Browser {
                user: user.to_string(),
            },
            auth: None,
            caller_id: None,
            via: None,
        }
    }

    /// Whom the leg's media faces, to pick the local address it is offered
    /// on: the SIP peer, or for a browser this node's own relay (the
    /// unspecified address routes to loopback).
    pub fn media_peer(&self) -> SocketAddr {
        match &self.reach {
            Reach::Sip { dest, .. } => *dest,
            Reach::Browser { .. } => SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0),
        }
    }

    /// Whom it reaches, for the call record: the URI's user, or the agent.
    pub fn label(&self) -> &str {
        match &self.reach {
            Reach::Sip { uri, .. } => crate::sip::message::user_of(uri),
            Reach::Browser { user } => user,
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
