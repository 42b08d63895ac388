//! The wire details the load generator needs: SIP header lookups, the SDP's
//! media address, and the socket options and addresses of the batched I/O.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

pub fn header<'a>(msg: &'a str, names: &[&str]) -> Option<&'a str> {
    msg.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        names
            .iter()
            .any(|x| n.trim().eq_ignore_ascii_case(x))
            .then(|| v.trim())
    })
}

pub fn tag(value: &str) -> Option<&str> {
    let after = value.rfind('>').map(|i| &value[i..]).unwrap_or(value);
    after.split(';').find_map(|p| p.trim().strip_prefix("tag="))
}

/// The RTP address in an SDP body.
pub fn sdp_addr(msg: &str) -> Option<SocketAddrV4> {
    let body = msg.split_once("\r\n\r\n")?.1;
    let ip: Ipv4Addr = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim()
        .parse()
        .ok()?;
    let port: u16 = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some(SocketAddrV4::new(ip, port))
}

pub fn set_buffers(s: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: valid fd and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &bytes as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

pub fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid sockaddr_in; the fields are then set.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr = libc::in_addr {
        s_addr: u32::from(*a.ip()).to_be(),
    };
    s
}

/// The head of a 200 OK to `msg`: its Via, From, To, Call-ID and CSeq
/// echoed (the To given `to_tag` when we answer a new dialog).
pub fn ok_response(msg: &str, to_tag: Option<&str>) -> String {
    let mut resp = String::from("SIP/2.0 200 OK\r\n");
    for l in msg.lines().take_while(|l| !l.is_empty()) {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match (name.as_str(), to_tag) {
            ("via" | "v" | "from" | "f" | "call-id" | "i" | "cseq", _) | ("to" | "t", None) => {
                resp.push_str(l);
                resp.push_str("\r\n");
            }
            ("to" | "t", Some(tag)) => resp.push_str(&format!("{l};tag={tag}\r\n")),
            _ => {}
        }
    }
    resp
}
