//! HTTP the tests speak: requests to the node's API, and local endpoints a plugin calls.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::*;

/// A minimal HTTP/1.1 GET (the kit avoids an HTTP client dependency).
/// `POST` with a body; returns the status and body.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, String)> {
    http_request(addr, "POST", path, token, body.as_bytes())
}

pub fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("HTTP status")?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    let body = if resp
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    Ok((status, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// One HTTP request an [`HttpSink`] received.
#[derive(Debug, Clone)]
pub struct HttpRequestSeen {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// A local HTTP endpoint that answers 200 to everything and keeps what it got
/// (the webhook receiver a plugin posts to).
pub struct HttpSink {
    pub addr: SocketAddr,
    rx: std::sync::mpsc::Receiver<HttpRequestSeen>,
}

impl HttpSink {
    pub fn start() -> Result<HttpSink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    if let Ok(req) = read_http_request(&stream) {
                        let mut s = &stream;
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        );
                        let _ = tx.send(req);
                    }
                });
            }
        });
        Ok(HttpSink { addr, rx })
    }

    /// The next request, waiting up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<HttpRequestSeen> {
        self.rx.recv_timeout(timeout).ok()
    }
}

fn read_http_request(stream: &std::net::TcpStream) -> Result<HttpRequestSeen> {
    use std::io::{BufRead, BufReader};
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body)?;
    Ok(HttpRequestSeen {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Python's own `http.server` serving a directory: a real HTTP server
/// standing in for a CRM. Killed on drop.
pub struct StaticHttp {
    child: Child,
    pub addr: SocketAddr,
}

impl StaticHttp {
    pub fn serve(dir: &Path) -> Result<StaticHttp> {
        let port = free_tcp_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting python3 -m http.server")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("python http.server did not come up on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(StaticHttp { child, addr })
    }
}

impl Drop for StaticHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP request with a body and an optional bearer token: (status, body).
/// Sends `head` (request line and headers, without the blank line) and
/// `body` as they are; returns the status and body.
pub fn http_raw(addr: SocketAddr, head: &str, body: &[u8]) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    // A refused upload (401, 413) is answered before its body is all read,
    // and the node closes: the rest of the write then fails with a broken
    // pipe or a reset, and the answer is still there to read (as curl does).
    let wrote = s.write_all(body);
    let mut resp = Vec::new();
    let read = s.read_to_end(&mut resp);
    if resp.is_empty() {
        wrote?;
        read?;
    }
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<(u16, String)> {
    let auth = token
        .map(|t| format!("\r\nauthorization: Bearer {t}"))
        .unwrap_or_default();
    http_raw(
        addr,
        &format!("{method} {path} HTTP/1.1\r\nhost: {addr}{auth}"),
        body,
    )
}
