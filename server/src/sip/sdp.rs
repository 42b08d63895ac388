//! SDP offer/answer for audio legs: pick PCMU or PCMA plus telephone-event.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use crate::codec::g711::G711;

/// Why an offer cannot be answered.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SdpError {
    /// The body is not SDP (400 Bad Request).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No audio stream, or none with a codec we speak (488 Not Acceptable Here).
    #[error("no common codec")]
    NoCommonCodec,
}

/// The outcome of negotiating an offer: where to send media and in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Where the peer wants RTP.
    pub remote: SocketAddr,
    /// The audio codec both sides use.
    pub codec: G711,
    /// Payload type of RFC 4733 telephone-event, when the peer offered it.
    pub dtmf_pt: Option<u8>,
}

/// Negotiates an SDP offer, honouring the offerer's codec order.
pub fn negotiate(body: &[u8]) -> Result<Negotiated, SdpError> {
    let sdp = sdp::SessionDescription::unmarshal(&mut Cursor::new(body))
        .map_err(|e| SdpError::Malformed(e.to_string()))?;
    let session_ip = sdp
        .connection_information
        .as_ref()
        .and_then(|c| c.address.as_ref())
        .and_then(|a| a.address.parse::<IpAddr>().ok());
    for media in &sdp.media_descriptions {
        if media.media_name.media != "audio" || media.media_name.port.value == 0 {
            continue;
        }
        let ip = media
            .connection_information
            .as_ref()
            .and_then(|c| c.address.as_ref())
            .and_then(|a| a.address.parse::<IpAddr>().ok())
            .or(session_ip)
            .ok_or_else(|| SdpError::Malformed("no connection address".into()))?;
        let port = u16::try_from(media.media_name.port.value)
            .map_err(|_| SdpError::Malformed("port out of range".into()))?;
        let rtpmap = |pt: &str| -> Option<String> {
            media.attributes.iter().find_map(|a| {
                let v = a.value.as_deref()?;
                let (p, enc) = v.split_once(' ')?;
                (a.key == "rtpmap" && p == pt).then(|| enc.trim().to_ascii_lowercase())
            })
        };
        let mut codec = None;
        let mut dtmf_pt = None;
        for fmt in &media.media_name.formats {
            let Ok(pt) = fmt.parse::<u8>() else { continue };
            let enc = rtpmap(fmt);
            let found = match (pt, enc.as_deref()) {
                (_, Some("pcmu/8000")) | (0, None) => Some(G711::Ulaw(pt)),
                (_, Some("pcma/8000")) | (8, None) => Some(G711::Alaw(pt)),
                (_, Some("telephone-event/8000")) => {
                    dtmf_pt.get_or_insert(pt);
                    None
                }
                _ => None,
            };
            if codec.is_none() {
                codec = found;
            }
        }
        if let Some(codec) = codec {
            return Ok(Negotiated {
                remote: SocketAddr::new(ip, port),
                codec,
                dtmf_pt,
            });
        }
    }
    Err(SdpError::NoCommonCodec)
}

/// Media direction of an offer (RFC 3264 §5.1), as far as hold goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction our answer takes.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the offerer wants to receive our media.
    pub fn peer_receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// The direction an SDP body asks for; `c=0.0.0.0` (RFC 2543 hold) counts as sendonly.
pub fn direction(body: &[u8]) -> Direction {
    let text = String::from_utf8_lossy(body);
    let mut dir = Direction::SendRecv;
    for line in text.lines().map(str::trim) {
        dir = match line {
            "a=sendonly" => Direction::SendOnly,
            "a=recvonly" => Direction::RecvOnly,
            "a=inactive" => Direction::Inactive,
            "a=sendrecv" => Direction::SendRecv,
            "c=IN IP4 0.0.0.0" => Direction::SendOnly,
            _ => continue,
        };
    }
    dir
}

/// Our answer with its direction attribute replaced.
pub fn with_direction(answer: &str, dir: Direction) -> String {
    answer.replace("a=sendrecv\r\n", &format!("a={}\r\n", dir.attribute()))
}

/// Builds the SDP answer for a negotiated offer.
pub fn answer(local: SocketAddr, neg: &Negotiated, session_id: u64) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let (pt, name) = match neg.codec {
        G711::Ulaw(pt) => (pt, "PCMU"),
        G711::Alaw(pt) => (pt, "PCMA"),
    };
    let mut s = format!(
        "v=0\r\no=hookline {session_id} {session_id} IN {family} {ip}\r\ns=hookline\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt}",
        port = local.port()
    );
    if let Some(te) = neg.dtmf_pt {
        s.push_str(&format!(" {te}"));
    }
    s.push_str(&format!("\r\na=rtpmap:{pt} {name}/8000\r\n"));
    if let Some(te) = neg.dtmf_pt {
        s.push_str(&format!(
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        ));
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s
}

/// Builds an offer for an outbound leg: `prefer` first (so a bridge to a
/// caller using it needs no transcoding), the other G.711 law, telephone-event.
pub fn offer(local: SocketAddr, prefer: G711, session_id: u64) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let order = match prefer {
        G711::Ulaw(_) => "0 8",
        G711::Alaw(_) => "8 0",
    };
    format!(
        "v=0\r\no=hookline {session_id} {session_id} IN {family} {ip}\r\ns=hookline\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {order} 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
        port = local.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

    #[test]
    fn picks_offerers_first_codec_and_dtmf() {
        let n = negotiate(OFFER.as_bytes()).unwrap();
        assert_eq!(n.codec, G711::Alaw(8));
        assert_eq!(n.dtmf_pt, Some(101));
        assert_eq!(n.remote, "127.0.0.1:6000".parse().unwrap());
        let a = answer("127.0.0.1:20000".parse().unwrap(), &n, 7);
        assert!(a.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{a}");
        assert!(negotiate(a.as_bytes()).is_ok());
    }

    #[test]
    fn hold_directions() {
        let held = format!("{OFFER}a=sendonly\r\n");
        assert_eq!(direction(held.as_bytes()), Direction::SendOnly);
        assert_eq!(direction(held.as_bytes()).answer(), Direction::RecvOnly);
        assert!(!direction(held.as_bytes()).peer_receives());
        assert_eq!(direction(OFFER.as_bytes()), Direction::SendRecv);
        let old = OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        assert_eq!(direction(old.as_bytes()), Direction::SendOnly);
        let n = negotiate(OFFER.as_bytes()).unwrap();
        let a = answer("127.0.0.1:1".parse().unwrap(), &n, 1);
        assert!(with_direction(&a, Direction::RecvOnly).contains("a=recvonly\r\n"));
    }

    #[test]
    fn offer_prefers_the_callers_law() {
        let o = offer("127.0.0.1:20002".parse().unwrap(), G711::Alaw(8), 1);
        let n = negotiate(o.as_bytes()).unwrap();
        assert_eq!((n.codec, n.dtmf_pt), (G711::Alaw(8), Some(101)));
    }

    #[test]
    fn dynamic_pcmu_is_accepted() {
        let o = OFFER
            .replace("RTP/AVP 8 0 101", "RTP/AVP 96")
            .replace("8 PCMA", "96 PCMU");
        assert_eq!(negotiate(o.as_bytes()).unwrap().codec, G711::Ulaw(96));
    }

    #[test]
    fn no_common_codec_and_garbage() {
        let o = OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 9 101");
        assert_eq!(negotiate(o.as_bytes()), Err(SdpError::NoCommonCodec));
        assert!(matches!(negotiate(b"hello"), Err(SdpError::Malformed(_))));
        assert!(negotiate(b"").is_err());
    }
}
