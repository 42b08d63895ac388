//! Registrar and location service, sans-IO: REGISTER with digest
//! authentication, bindings with expiry, unregister, and a per-source limit on
//! failed authentications (brute-force protection). Time is passed in.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::digest::{Credentials, NonceSigner};
use super::message;

/// Failed authentications of one user from one address within
/// `FAIL_WINDOW_S` before that pair is blocked (one phone with a wrong
/// password does not lock out the other phones behind its NAT).
const MAX_FAILURES: u32 = 10;
/// (address, user) pairs tracked at once: spoofed sources cannot grow the
/// table past this (expired entries are pruned to make room).
const MAX_TRACKED: usize = 10_000;
const FAIL_WINDOW_S: u64 = 60;
const BLOCK_S: u64 = 300;

/// A user name as a failure-table key (bounded, so a huge name costs nothing).
fn user_key(user: &str) -> String {
    user.chars().take(64).collect()
}

/// One registered contact of an extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    pub user: String,
    /// The Contact URI to send calls to.
    pub contact: String,
    /// Where the REGISTER came from (the phone's public address behind NAT).
    pub source: SocketAddr,
    pub expires_at: u64,
}

/// What to answer a REGISTER with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 401 with this `WWW-Authenticate` value.
    Challenge(String),
    /// 200 listing the user's current contacts with their remaining seconds.
    Ok(Vec<(String, u64)>),
    /// 403: wrong credentials too often from this address, or a realm mismatch.
    Forbidden,
    /// 423 with this Min-Expires.
    IntervalTooBrief(u32),
}

/// A REGISTER as the registrar needs it.
#[derive(Debug, Clone)]
pub struct RegisterRequest<'a> {
    pub source: SocketAddr,
    /// User part of the To URI (the address of record).
    pub user: &'a str,
    pub authorization: Option<&'a str>,
    /// Contact header values (each may hold several comma-separated contacts), or "*".
    pub contacts: Vec<&'a str>,
    pub expires: Option<u32>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    window_start: u64,
    blocked_until: u64,
}

/// Extensions, their credentials and where they are.
#[derive(Debug)]
pub struct Registrar {
    realm: String,
    users: HashMap<String, String>,
    signer: NonceSigner,
    bindings: HashMap<String, Vec<Binding>>,
    failures: HashMap<(IpAddr, String), Failures>,
    /// Peers whose INVITEs need no credentials (the trunks).
    pub trusted_ips: std::collections::HashSet<IpAddr>,
    /// INVITEs from this machine need no credentials (a local proxy; the
    /// default when `invite_auth` is not set explicitly).
    pub trust_loopback: bool,
    pub min_expires: u32,
    pub max_expires: u32,
    /// The last request refused for its credentials, for the endpoint to
    /// report (it takes it after each request, so one at most).
    refusal: Option<Refusal>,
}

/// Credentials refused: wrong, or from a pair blocked for guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The user it claimed (cut to 64 bytes: it is untrusted).
    pub user: String,
    pub source: IpAddr,
    /// The pair is blocked now.
    pub blocked: bool,
}

impl Registrar {
    /// `users`: extension -> password. `secret` signs nonces (random per start).
    pub fn new(realm: &str, users: HashMap<String, String>, secret: String) -> Self {
        Registrar {
            realm: realm.to_string(),
            users,
            signer: NonceSigner::new(secret),
            bindings: HashMap::new(),
            failures: HashMap::new(),
            trusted_ips: Default::default(),
            trust_loopback: false,
            min_expires: 60,
            max_expires: 3600,
            refusal: None,
        }
    }

    fn challenge(&self, now: u64, stale: bool) -> RegisterOutcome {
        RegisterOutcome::Challenge(format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"{}",
            self.realm,
            self.signer.issue(now),
            if stale { ", stale=true" } else { "" }
        ))
    }

    fn blocked(&self, ip: IpAddr, user: &str, now: u64) -> bool {
        self.failures
            .get(&(ip, user_key(user)))
            .is_some_and(|f| f.blocked_until > now)
    }

    /// The last request refused for its credentials, once.
    pub fn take_refusal(&mut self) -> Option<Refusal> {
        self.refusal.take()
    }

    fn refused(&mut self, ip: IpAddr, user: &str, now: u64) {
        let mut end = user.len().min(64);
        while !user.is_char_boundary(end) {
            end -= 1;
        }
        self.refusal = Some(Refusal {
            user: user[..end].to_string(),
            source: ip,
            blocked: self.blocked(ip, user, now),
        });
    }

    /// Pairs tracked now (bounded by `MAX_TRACKED`).
    pub fn tracked_failures(&self) -> usize {
        self.failures.len()
    }

    fn fail(&mut self, ip: IpAddr, user: &str, now: u64) {
        let key = (ip, user_key(user));
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(&key) {
            self.failures.retain(|_, f| {
                f.blocked_until > now || now.saturating_sub(f.window_start) <= FAIL_WINDOW_S
            });
            if self.failures.len() >= MAX_TRACKED {
                return;
            }
        }
        let f = self.failures.entry(key).or_default();
        if now - f.window_start > FAIL_WINDOW_S {
            *f = Failures {
                count: 0,
                window_start: now,
                blocked_until: f.blocked_until,
            };
        }
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.blocked_until = now + BLOCK_S;
        }
    }

    /// Whether an INVITE from `source` needs no credentials: it comes from
    /// where a registered phone registered from, or from a trusted peer (trunks).
    pub fn trusted(&self, source: SocketAddr, now: u64) -> bool {
        (self.trust_loopback && source.ip().is_loopback())
            || self.trusted_ips.contains(&source.ip())
            || self
                .bindings
                .values()
                .flatten()
                .any(|b| b.source == source && b.expires_at > now)
    }

    /// Checks an INVITE's `Proxy-Authorization` against the extensions'
    /// credentials (same failure counting as REGISTER). `Ok` carries the user.
    pub fn authorize_invite(
        &mut self,
        now: u64,
        source: SocketAddr,
        authorization: Option<&str>,
    ) -> Result<String, RegisterOutcome> {
        let ip = source.ip();
        let Some(creds) = authorization.and_then(Credentials::parse) else {
            return Err(self.challenge(now, false));
        };
        if self.blocked(ip, &creds.username, now) {
            self.refused(ip, &creds.username, now);
            return Err(RegisterOutcome::Forbidden);
        }
        let ok = creds.realm == self.realm
            && self
                .users
                .get(&creds.username)
                .is_some_and(|p| creds.expected("INVITE", p) == creds.response);
        if !ok {
            self.fail(ip, &creds.username, now);
            self.refused(ip, &creds.username, now);
            return Err(if self.blocked(ip, &creds.username, now) {
                RegisterOutcome::Forbidden
            } else {
                self.challenge(now, false)
            });
        }
        if !self.signer.valid(&creds.nonce, now) {
            return Err(self.challenge(now, true));
        }
        Ok(creds.username)
    }

    /// Handles one REGISTER at `now` (Unix seconds). Failures count against
    /// the address of record (To), which a guesser cannot vary to escape.
    pub fn register(&mut self, now: u64, req: &RegisterRequest<'_>) -> RegisterOutcome {
        let ip = req.source.ip();
        if self.blocked(ip, req.user, now) {
            self.refused(ip, req.user, now);
            return RegisterOutcome::Forbidden;
        }
        let Some(creds) = req.authorization.and_then(Credentials::parse) else {
            return self.challenge(now, false);
        };
        let password = self.users.get(&creds.username);
        let ok = creds.username == req.user
            && creds.realm == self.realm
            && password.is_some_and(|p| creds.expected("REGISTER", p) == creds.response);
        if !ok {
            self.fail(ip, req.user, now);
            self.refused(ip, req.user, now);
            return if self.blocked(ip, req.user, now) {
                RegisterOutcome::Forbidden
            } else {
                self.challenge(now, false)
            };
        }
        if !self.signer.valid(&creds.nonce, now) {
            return self.challenge(now, true); // right password, old nonce
        }
        self.apply(now, req)
    }

    fn apply(&mut self, now: u64, req: &RegisterRequest<'_>) -> RegisterOutcome {
        let list = self.bindings.entry(req.user.to_string()).or_default();
        list.retain(|b| b.expires_at > now);
        if req.contacts.iter().any(|c| c.trim() == "*") {
            if req.expires == Some(0) {
                list.clear();
            }
        } else {
            for value in &req.contacts {
                for contact in split_contacts(value) {
                    let uri = message::uri_of(contact).to_string();
                    let expires = contact_expires(contact)
                        .or(req.expires)
                        .unwrap_or(self.max_expires);
                    list.retain(|b| b.contact != uri);
                    if expires == 0 {
                        continue;
                    }
                    if expires < self.min_expires {
                        return RegisterOutcome::IntervalTooBrief(self.min_expires);
                    }
                    list.push(Binding {
                        user: req.user.to_string(),
                        contact: uri,
                        source: req.source,
                        expires_at: now + expires.min(self.max_expires) as u64,
                    });
                }
            }
        }
        RegisterOutcome::Ok(
            list.iter()
                .map(|b| (b.contact.clone(), b.expires_at - now))
                .collect(),
        )
    }

    /// Where an extension can be reached now.
    pub fn lookup(&self, user: &str, now: u64) -> Vec<Binding> {
        self.bindings
            .get(user)
            .map(|l| l.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Every live binding.
    pub fn all(&self, now: u64) -> Vec<Binding> {
        let mut v: Vec<Binding> = self
            .bindings
            .values()
            .flatten()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.user.cmp(&b.user).then(a.contact.cmp(&b.contact)));
        v
    }
}

/// Splits a Contact value into contacts on commas outside `<>` and quotes.
fn split_contacts(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, ch) in value.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.into_iter().filter(|c| !c.is_empty()).collect()
}

/// The `expires` parameter of one contact (outside the URI).
fn contact_expires(contact: &str) -> Option<u32> {
    let params = contact.rfind('>').map(|i| &contact[i..]).unwrap_or(contact);
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("expires")
            .then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registrar() -> Registrar {
        Registrar::new(
            "hookline",
            HashMap::from([
                ("201".to_string(), "secret".to_string()),
                ("202".to_string(), "pw202".to_string()),
            ]),
            "k".into(),
        )
    }

    /// Answers a challenge the way a phone does.
    fn authorize(challenge: &str, user: &str, password: &str) -> String {
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut c = Credentials {
            username: user.into(),
            realm: "hookline".into(),
            nonce: nonce.into(),
            uri: "sip:127.0.0.1".into(),
            response: String::new(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("abc".into()),
        };
        c.response = c.expected("REGISTER", password);
        format!(
            "Digest username=\"{user}\", realm=\"hookline\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1\", response=\"{}\", qop=auth, nc=00000001, cnonce=\"abc\", algorithm=MD5",
            c.response
        )
    }

    fn req<'a>(
        auth: Option<&'a str>,
        contacts: Vec<&'a str>,
        expires: Option<u32>,
    ) -> RegisterRequest<'a> {
        RegisterRequest {
            source: "10.0.0.2:5060".parse().unwrap(),
            user: "201",
            authorization: auth,
            contacts,
            expires,
        }
    }

    #[test]
    fn challenge_then_register_expire_and_unregister() {
        let mut r = registrar();
        let RegisterOutcome::Challenge(ch) =
            r.register(1000, &req(None, vec!["<sip:201@10.0.0.2>"], Some(600)))
        else {
            panic!()
        };
        let auth = authorize(&ch, "201", "secret");
        let out = r.register(
            1001,
            &req(
                Some(&auth),
                vec!["<sip:201@10.0.0.2>", "<sip:201@10.0.0.3>;expires=120"],
                Some(600),
            ),
        );
        assert_eq!(
            out,
            RegisterOutcome::Ok(vec![
                ("sip:201@10.0.0.2".into(), 600),
                ("sip:201@10.0.0.3".into(), 120)
            ])
        );
        assert_eq!(r.lookup("201", 1100).len(), 2);
        assert_eq!(r.lookup("201", 1200).len(), 1, "the 120 s contact expired");
        // Unregister everything.
        let out = r.register(1300, &req(Some(&auth), vec!["*"], Some(0)));
        assert_eq!(out, RegisterOutcome::Ok(vec![]));
        assert!(r.lookup("201", 1300).is_empty());
        // Too short an interval.
        assert_eq!(
            r.register(1300, &req(Some(&auth), vec!["<sip:x@y>"], Some(5))),
            RegisterOutcome::IntervalTooBrief(60)
        );
        // An old nonce with the right password is stale, not a failure.
        match r.register(2000, &req(Some(&auth), vec!["<sip:x@y>"], Some(600))) {
            RegisterOutcome::Challenge(c) => assert!(c.contains("stale=true")),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn the_failure_table_stays_bounded_under_spoofed_sources() {
        let mut r = registrar();
        for i in 0..(MAX_TRACKED as u32 + 1000) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            r.fail(ip, "201", 1000);
        }
        assert!(r.tracked_failures() <= MAX_TRACKED);
        // A minute later the stale entries make room again.
        r.fail(
            "203.0.113.1".parse().unwrap(),
            "201",
            1000 + FAIL_WINDOW_S + 1,
        );
        assert!(r.tracked_failures() <= MAX_TRACKED);
        assert!(r
            .failures
            .contains_key(&("203.0.113.1".parse().unwrap(), "201".to_string())));
    }

    #[test]
    fn wrong_passwords_block_the_source() {
        let mut r = registrar();
        let RegisterOutcome::Challenge(ch) =
            r.register(1000, &req(None, vec!["<sip:201@h>"], None))
        else {
            panic!()
        };
        let bad = authorize(&ch, "201", "guess");
        for _ in 0..MAX_FAILURES - 1 {
            assert!(matches!(
                r.register(1000, &req(Some(&bad), vec!["<sip:201@h>"], None)),
                RegisterOutcome::Challenge(_)
            ));
        }
        assert_eq!(
            r.register(1000, &req(Some(&bad), vec!["<sip:201@h>"], None)),
            RegisterOutcome::Forbidden
        );
        // Even the right password is refused while blocked …
        let good = authorize(&ch, "201", "secret");
        assert_eq!(
            r.register(1010, &req(Some(&good), vec!["<sip:201@h>"], None)),
            RegisterOutcome::Forbidden
        );
        // … and accepted after the block (with a fresh nonce).
        let RegisterOutcome::Challenge(ch) =
            r.register(1000 + BLOCK_S + 1, &req(None, vec!["<sip:201@h>"], None))
        else {
            panic!()
        };
        let good = authorize(&ch, "201", "secret");
        assert!(matches!(
            r.register(
                1000 + BLOCK_S + 2,
                &req(Some(&good), vec!["<sip:201@h>"], None)
            ),
            RegisterOutcome::Ok(_)
        ));
        // Another phone behind the same address was never blocked.
        let mut first202 = req(None, vec!["<sip:202@h>"], None);
        first202.user = "202";
        let RegisterOutcome::Challenge(ch2) = r.register(1010, &first202) else {
            panic!("202 is challenged, not blocked")
        };
        let auth202 = authorize(&ch2, "202", "pw202");
        let mut q202 = req(Some(&auth202), vec!["<sip:202@h>"], None);
        q202.user = "202";
        assert!(
            matches!(r.register(1010, &q202), RegisterOutcome::Ok(_)),
            "{:?}",
            r.register(1010, &q202)
        );
        // An unknown user never registers.
        let other = authorize(&ch, "999", "secret");
        let mut q = req(Some(&other), vec!["<sip:999@h>"], None);
        q.user = "999";
        assert!(matches!(
            r.register(1000 + BLOCK_S + 2, &q),
            RegisterOutcome::Challenge(_)
        ));
    }
}
