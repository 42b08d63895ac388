//! Reading requests (rsip) and writing responses and requests as text.
//!
//! Responses echo the request's Via, From, To, Call-ID and CSeq values verbatim,
//! which keeps them byte-exact to what the peer sent (RFC 3261 §8.2.6.2).

use rsip::headers::UntypedHeader;
use rsip::prelude::HeadersExt;
use rsip::Header;

/// The dialog-identifying headers of a request, as sent.
#[derive(Debug, Clone)]
pub struct Echo {
    pub vias: Vec<String>,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: String,
}

impl Echo {
    /// Extracts the headers a response must echo; `None` when one is missing.
    pub fn from_request(req: &rsip::Request) -> Option<Echo> {
        let vias: Vec<String> = req
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::Via(v) => Some(v.value().to_string()),
                _ => None,
            })
            .collect();
        if vias.is_empty() {
            return None;
        }
        Some(Echo {
            vias,
            from: req.from_header().ok()?.value().to_string(),
            to: req.to_header().ok()?.value().to_string(),
            call_id: req.call_id_header().ok()?.value().to_string(),
            cseq: req.cseq_header().ok()?.value().to_string(),
        })
    }

    /// Extracts the same headers from raw text, for answering what rsip rejected.
    pub fn from_raw(data: &[u8]) -> Option<Echo> {
        let text = String::from_utf8_lossy(data);
        let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
        let first = lines.next()?;
        let method = first.split(' ').next()?;
        if method.is_empty()
            || method == "ACK"
            || !method.bytes().all(|b| b.is_ascii_uppercase())
            || first.split(' ').count() < 3
        {
            return None;
        }
        let mut echo = Echo {
            vias: Vec::new(),
            from: String::new(),
            to: String::new(),
            call_id: String::new(),
            cseq: String::new(),
        };
        for line in lines.take_while(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim().to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "via" | "v" => echo.vias.push(value),
                "from" | "f" => echo.from = value,
                "to" | "t" => echo.to = value,
                "call-id" | "i" => echo.call_id = value,
                "cseq" => echo.cseq = value,
                _ => {}
            }
        }
        let complete = !echo.vias.is_empty()
            && !echo.from.is_empty()
            && !echo.to.is_empty()
            && !echo.call_id.is_empty()
            && !echo.cseq.is_empty();
        complete.then_some(echo)
    }
}

/// The standard reason phrase for the codes this node sends.
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        401 => "Unauthorized",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        415 => "Unsupported Media Type",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes a response. `to_tag` is added to To when it carries none yet.
/// `extra` lines are complete header lines without CRLF.
pub fn response(
    echo: &Echo,
    code: u16,
    to_tag: Option<&str>,
    extra: &[String],
    body: Option<(&str, &str)>,
) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {code} {}\r\n", reason(code));
    for v in &echo.vias {
        s.push_str("Via: ");
        s.push_str(v);
        s.push_str("\r\n");
    }
    s.push_str("From: ");
    s.push_str(&echo.from);
    s.push_str("\r\nTo: ");
    s.push_str(&echo.to);
    if let Some(tag) = to_tag {
        if !has_tag(&echo.to) {
            s.push_str(";tag=");
            s.push_str(tag);
        }
    }
    s.push_str("\r\nCall-ID: ");
    s.push_str(&echo.call_id);
    s.push_str("\r\nCSeq: ");
    s.push_str(&echo.cseq);
    s.push_str("\r\nServer: Hookline\r\n");
    for line in extra {
        s.push_str(line);
        s.push_str("\r\n");
    }
    finish(s, body)
}

fn finish(mut s: String, body: Option<(&str, &str)>) -> Vec<u8> {
    match body {
        Some((content_type, body)) => {
            s.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
        None => s.push_str("Content-Length: 0\r\n\r\n"),
    }
    s.into_bytes()
}

/// Does a From/To value carry a tag parameter (outside the URI's angle brackets)?
pub fn has_tag(value: &str) -> bool {
    tag_of(value).is_some()
}

/// The tag parameter of a From/To value.
pub fn tag_of(value: &str) -> Option<&str> {
    let params = match value.rfind('>') {
        Some(i) => &value[i..],
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("tag").then(|| v.trim())
    })
}

/// The URI inside a name-addr (`"Bob" <sip:bob@host>;tag=x`) or addr-spec value.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The user part of a SIP URI (`sip:user@host` -> `user`); empty when absent.
/// Host part of a SIP URI (no port or parameters): the tenant's domain.
pub fn host_of(uri: &str) -> &str {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .unwrap_or("");
    let host = rest.rsplit('@').next().unwrap_or("");
    let host = host.split([';', '?', '>']).next().unwrap_or("");
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    host.split(':').next().unwrap_or("")
}

pub fn user_of(uri: &str) -> &str {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(uri);
    match rest.find('@') {
        Some(i) => &rest[..i],
        None if uri.starts_with("tel:") => rest.split(';').next().unwrap_or(""),
        None => "",
    }
}

/// The quoted or bare display name of a name-addr, when there is one.
pub fn display_name_of(value: &str) -> Option<String> {
    let i = value.find('<')?;
    let name = value[..i].trim().trim_matches('"').trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// A request this node originates inside a dialog (BYE).
pub struct OutRequest<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    /// "UDP" or "TCP": how the request travels (the Via says so).
    pub transport: &'a str,
    pub via_host: &'a str,
    pub branch: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
}

impl OutRequest<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let OutRequest {
            method,
            uri,
            transport,
            via_host,
            branch,
            from,
            to,
            call_id,
            cseq,
        } = self;
        let s = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{transport} {via_host};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nUser-Agent: Hookline\r\n"
        );
        finish(s, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_helpers() {
        let v = "\"Alice A\" <sip:alice@example.com;transport=udp>;tag=abc";
        assert_eq!(uri_of(v), "sip:alice@example.com;transport=udp");
        assert_eq!(user_of(uri_of(v)), "alice");
        assert_eq!(tag_of(v), Some("abc"));
        assert_eq!(display_name_of(v).as_deref(), Some("Alice A"));
        assert_eq!(tag_of("<sip:bob@x;tag=no>"), None);
        assert_eq!(user_of("tel:+380441234567"), "+380441234567");
        assert_eq!(user_of("sip:host.example"), "");
    }

    #[test]
    fn raw_echo_needs_every_header() {
        let raw = b"INVITE sip:1@x SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1\r\nf: <sip:a@x>;tag=1\r\nt: <sip:1@x>\r\ni: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 9999\r\n\r\n";
        let e = Echo::from_raw(raw).unwrap();
        let r = String::from_utf8(response(&e, 400, None, &[], None)).unwrap();
        assert!(r.starts_with("SIP/2.0 400 Bad Request\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"));
        assert!(Echo::from_raw(b"INVITE sip:1@x SIP/2.0\r\ni: c1\r\n\r\n").is_none());
        assert!(Echo::from_raw(b"ACK sip:1@x SIP/2.0\r\n").is_none());
        assert!(Echo::from_raw(b"\xff\xfe").is_none());
    }
}
