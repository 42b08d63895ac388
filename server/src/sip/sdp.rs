//! SDP offer/answer for audio legs: pick the offerer's first codec we speak
//! (PCMU, PCMA, G.722, Opus, L16) plus telephone-event on the same clock.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use crate::codec::g711::G711;
use crate::codec::Format;

/// Why an offer cannot be answered.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
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
    pub codec: Format,
    /// Payload type of RFC 4733 telephone-event, when the peer offered it.
    pub dtmf_pt: Option<u8>,
    /// The clock of those events: the audio clock, unless the peer only
    /// offered another (some send telephone-event/8000 beside Opus).
    pub dtmf_rate: u32,
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
        let attr = |key: &str, pt: &str| -> Option<&str> {
            media.attributes.iter().find_map(|a| {
                let v = a.value.as_deref()?;
                let (p, rest) = v.split_once(' ')?;
                (a.key == key && p == pt).then_some(rest.trim())
            })
        };
        let mut codec: Option<Format> = None;
        // telephone-event payload types with their clock rates.
        let mut events: Vec<(u8, u32)> = Vec::new();
        for fmt in &media.media_name.formats {
            let Ok(pt) = fmt.parse::<u8>() else { continue };
            let found = match attr("rtpmap", fmt) {
                Some(enc) => {
                    let lower = enc.to_ascii_lowercase();
                    if let Some(rate) = lower.strip_prefix("telephone-event/") {
                        events.push((pt, rate.parse().unwrap_or(8000)));
                        None
                    } else {
                        Format::from_rtpmap(pt, enc, attr("fmtp", fmt))
                    }
                }
                None => Format::from_static(pt),
            };
            if codec.is_none() {
                codec = found;
            }
        }
        // RFC 4733 events run on the audio clock: take the one that matches,
        // else whatever the peer offered.
        let event = codec.and_then(|c| {
            events
                .iter()
                .find(|(_, rate)| *rate == c.clock_rate())
                .or(events.first())
                .copied()
        });
        let (dtmf_pt, dtmf_rate) = match event {
            Some((pt, rate)) => (Some(pt), rate),
            None => (None, codec.map_or(8000, |c| c.clock_rate())),
        };
        if let Some(codec) = codec {
            return Ok(Negotiated {
                remote: SocketAddr::new(ip, port),
                codec,
                dtmf_pt,
                dtmf_rate,
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
    let pt = neg.codec.payload_type();
    let mut s = format!(
        "v=0\r\no=hookline {session_id} {session_id} IN {family} {ip}\r\ns=hookline\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt}",
        port = local.port()
    );
    if let Some(te) = neg.dtmf_pt {
        s.push_str(&format!(" {te}"));
    }
    s.push_str(&format!("\r\na=rtpmap:{pt} {}\r\n", neg.codec.rtpmap()));
    if let Some(fmtp) = neg.codec.fmtp() {
        s.push_str(&format!("a=fmtp:{pt} {fmtp}\r\n"));
    }
    if let Some(te) = neg.dtmf_pt {
        s.push_str(&format!(
            "a=rtpmap:{te} telephone-event/{}\r\na=fmtp:{te} 0-16\r\n",
            neg.dtmf_rate
        ));
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s
}

/// Payload types of what we offer beside G.711 and G.722's static ones.
const OPUS_PT: u8 = 111;
const EVENT_PT: u8 = 101;
const EVENT_48K_PT: u8 = 102;

/// Builds an offer for an outbound leg: `prefer` first (so a bridge to a
/// caller using it needs no transcoding), then G.711, G.722 and Opus, with
/// telephone-event on both clocks.
pub fn offer(local: SocketAddr, prefer: Format, session_id: u64) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut formats = vec![match prefer {
        // Our own payload types, whatever the caller's were.
        Format::Opus { .. } => Format::Opus {
            pt: OPUS_PT,
            fec: true,
            dtx: false,
        },
        Format::G722 { .. } => Format::G722 { pt: 9 },
        Format::G711(G711::Ulaw(_)) => Format::PCMU,
        Format::G711(G711::Alaw(_)) => Format::PCMA,
        f @ Format::L16 { .. } => f.with_payload_type(96),
    }];
    for f in [
        Format::PCMU,
        Format::PCMA,
        Format::G722 { pt: 9 },
        Format::Opus {
            pt: OPUS_PT,
            fec: true,
            dtx: false,
        },
    ] {
        if !formats.iter().any(|g| g.same_codec(f)) {
            formats.push(f);
        }
    }
    let pts: Vec<String> = formats
        .iter()
        .map(|f| f.payload_type().to_string())
        .collect();
    let mut s = format!(
        "v=0\r\no=hookline {session_id} {session_id} IN {family} {ip}\r\ns=hookline\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {} {EVENT_PT} {EVENT_48K_PT}\r\n",
        pts.join(" "),
        port = local.port()
    );
    for f in &formats {
        let pt = f.payload_type();
        s.push_str(&format!("a=rtpmap:{pt} {}\r\n", f.rtpmap()));
        if let Some(fmtp) = f.fmtp() {
            s.push_str(&format!("a=fmtp:{pt} {fmtp}\r\n"));
        }
    }
    s.push_str(&format!(
        "a=rtpmap:{EVENT_PT} telephone-event/8000\r\na=fmtp:{EVENT_PT} 0-16\r\n\
         a=rtpmap:{EVENT_48K_PT} telephone-event/48000\r\na=fmtp:{EVENT_48K_PT} 0-16\r\n\
         a=ptime:20\r\na=sendrecv\r\n"
    ));
    s
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
        assert_eq!(n.codec, Format::PCMA);
        assert_eq!(n.dtmf_pt, Some(101));
        assert_eq!(n.remote, "127.0.0.1:6000".parse::<SocketAddr>().unwrap());
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
        let o = offer("127.0.0.1:20002".parse().unwrap(), Format::PCMA, 1);
        let n = negotiate(o.as_bytes()).unwrap();
        assert_eq!((n.codec, n.dtmf_pt), (Format::PCMA, Some(101)));
    }

    #[test]
    fn dynamic_pcmu_is_accepted() {
        let o = OFFER
            .replace("RTP/AVP 8 0 101", "RTP/AVP 96")
            .replace("8 PCMA", "96 PCMU");
        assert_eq!(
            negotiate(o.as_bytes()).unwrap().codec,
            Format::PCMU.with_payload_type(96)
        );
    }

    #[test]
    fn no_common_codec_and_garbage() {
        let o = OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 18 101");
        assert_eq!(negotiate(o.as_bytes()), Err(SdpError::NoCommonCodec));
        assert!(matches!(negotiate(b"hello"), Err(SdpError::Malformed(_))));
        assert!(negotiate(b"").is_err());
    }

    /// A browser's offer: Opus first with FEC, events on both clocks.
    #[test]
    fn opus_with_fec_and_the_matching_event_clock() {
        let o = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=audio 9000 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
            a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
            a=rtpmap:63 red/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
            a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n\
            a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n";
        let n = negotiate(o.as_bytes()).unwrap();
        assert_eq!(
            n.codec,
            Format::Opus {
                pt: 111,
                fec: true,
                dtx: false
            }
        );
        assert_eq!(n.dtmf_pt, Some(110));
        let a = answer("127.0.0.1:20000".parse().unwrap(), &n, 1);
        assert!(a.contains("a=rtpmap:111 opus/48000/2\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:110 telephone-event/48000\r\n"), "{a}");
        let back = negotiate(a.as_bytes()).unwrap();
        assert_eq!((back.codec, back.dtmf_pt), (n.codec, n.dtmf_pt));
        // G.722 (static 9, no rtpmap needed) when it comes first.
        let g = o.replace("SAVPF 111 63 9", "SAVPF 9 111 63");
        let n = negotiate(g.as_bytes()).unwrap();
        assert_eq!((n.codec, n.dtmf_pt), (Format::G722 { pt: 9 }, Some(126)));
    }

    #[test]
    fn offer_lists_every_codec_with_the_preferred_first() {
        let o = offer(
            "127.0.0.1:20002".parse().unwrap(),
            Format::Opus {
                pt: 96,
                fec: false,
                dtx: false,
            },
            1,
        );
        assert!(
            o.contains("m=audio 20002 RTP/AVP 111 0 8 9 101 102\r\n"),
            "{o}"
        );
        assert!(matches!(
            negotiate(o.as_bytes()).unwrap().codec,
            Format::Opus { pt: 111, .. }
        ));
    }
}
