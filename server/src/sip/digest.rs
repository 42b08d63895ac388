//! HTTP Digest authentication for SIP (RFC 2617 / RFC 3261 §22), MD5, with
//! stateless nonces: `<unix-seconds hex><md5(seconds:secret)>`, valid for a while.

use md5::{Digest, Md5};

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// The parameters of an `Authorization: Digest ...` header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

impl Credentials {
    /// Parses a header value; `None` when it is not Digest or lacks a field.
    pub fn parse(value: &str) -> Option<Credentials> {
        let rest = value.trim().strip_prefix("Digest")?.trim();
        let mut c = Credentials::default();
        for part in split_params(rest) {
            let (k, v) = part.split_once('=')?;
            let v = v.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v.to_ascii_lowercase(),
                "qop" => c.qop = Some(v),
                "nc" => c.nc = Some(v),
                "cnonce" => c.cnonce = Some(v),
                "algorithm" if !v.eq_ignore_ascii_case("md5") => return None,
                _ => {}
            }
        }
        (!c.username.is_empty() && !c.nonce.is_empty() && !c.response.is_empty()).then_some(c)
    }

    /// The response a client knowing `password` computes for `method`.
    pub fn expected(&self, method: &str, password: &str) -> String {
        let ha1 = md5_hex(&format!("{}:{}:{}", self.username, self.realm, password));
        let ha2 = md5_hex(&format!("{method}:{}", self.uri));
        match (&self.qop, &self.nc, &self.cnonce) {
            (Some(qop), Some(nc), Some(cnonce)) => {
                md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", self.nonce))
            }
            _ => md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }
}

/// A server's `WWW-Authenticate` / `Proxy-Authenticate: Digest ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    /// Set when the server offers `qop=auth`.
    pub qop_auth: bool,
    pub opaque: Option<String>,
}

impl Challenge {
    pub fn parse(value: &str) -> Option<Challenge> {
        let rest = value.trim().strip_prefix("Digest")?.trim();
        let (mut realm, mut nonce, mut qop_auth, mut opaque) = (None, None, false, None);
        for part in split_params(rest) {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "qop" => qop_auth = v.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")),
                "opaque" => opaque = Some(v),
                "algorithm" if !v.eq_ignore_ascii_case("md5") => return None,
                _ => {}
            }
        }
        Some(Challenge {
            realm: realm?,
            nonce: nonce?,
            qop_auth,
            opaque,
        })
    }

    /// The `Authorization` value answering this challenge.
    pub fn answer(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> String {
        let mut c = Credentials {
            username: user.into(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.into(),
            response: String::new(),
            qop: self.qop_auth.then(|| "auth".to_string()),
            nc: self.qop_auth.then(|| "00000001".to_string()),
            cnonce: self.qop_auth.then(|| cnonce.to_string()),
        };
        c.response = c.expected(method, password);
        let mut v = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{}\", algorithm=MD5",
            c.realm, c.nonce, c.response
        );
        if self.qop_auth {
            v.push_str(&format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        v
    }
}

/// Splits `a="x, y", b=z` on commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, ch) in s.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(s[start..].trim());
    }
    out.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Issues and checks nonces without storing them.
#[derive(Debug, Clone)]
pub struct NonceSigner {
    secret: String,
    /// Seconds a nonce stays valid.
    pub lifetime: u64,
}

impl NonceSigner {
    pub fn new(secret: String) -> Self {
        NonceSigner {
            secret,
            lifetime: 300,
        }
    }

    pub fn issue(&self, now_unix: u64) -> String {
        let ts = format!("{now_unix:x}");
        format!("{ts}{}", md5_hex(&format!("{ts}:{}", self.secret)))
    }

    /// A nonce we issued within its lifetime.
    pub fn valid(&self, nonce: &str, now_unix: u64) -> bool {
        if nonce.len() <= 32 || !nonce.is_char_boundary(nonce.len() - 32) {
            return false;
        }
        let (ts, mac) = nonce.split_at(nonce.len() - 32);
        let Ok(issued) = u64::from_str_radix(ts, 16) else {
            return false;
        };
        mac == md5_hex(&format!("{ts}:{}", self.secret))
            && now_unix >= issued
            && now_unix - issued <= self.lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        let c = Credentials::parse(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert_eq!(c.expected("GET", "Circle Of Life"), c.response);
        assert_ne!(c.expected("GET", "circle of life"), c.response);
    }

    #[test]
    fn answering_a_challenge_verifies() {
        let ch = Challenge::parse(
            r#"Digest realm="carrier", nonce="n1", qop="auth,auth-int", opaque="o""#,
        )
        .unwrap();
        assert!(ch.qop_auth);
        let auth = ch.answer("acct", "pw", "INVITE", "sip:555@127.0.0.1", "c1");
        let creds = Credentials::parse(&auth).unwrap();
        assert_eq!(creds.expected("INVITE", "pw"), creds.response);
        assert!(auth.contains("opaque=\"o\""));
        let plain = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        let creds = Credentials::parse(&plain.answer("u", "p", "INVITE", "sip:x@y", "c")).unwrap();
        assert_eq!(creds.qop, None);
        assert_eq!(creds.expected("INVITE", "p"), creds.response);
        assert!(Challenge::parse("Digest nonce=\"n\"").is_none());
    }

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let s = NonceSigner::new("k".into());
        let n = s.issue(1_000_000);
        assert!(s.valid(&n, 1_000_100));
        assert!(!s.valid(&n, 1_000_400));
        assert!(!s.valid(&n.replace('f', "e"), 1_000_100) || !n.contains('f'));
        assert!(!s.valid("0123", 1));
        assert!(!s.valid("é".repeat(20).as_str(), 1));
        assert!(Credentials::parse("Basic abc").is_none());
    }
}
