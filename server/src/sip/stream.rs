//! Framing SIP messages on a byte stream (TCP, RFC 3261 §18.3): headers end at
//! the first blank line, the body is Content-Length bytes. Sans-IO: bytes in,
//! whole messages out.

use thiserror::Error;

/// Largest message accepted on a stream.
pub const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("message over {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("missing or invalid Content-Length on a stream")]
    BadLength,
}

/// Accumulates stream bytes and cuts them into messages.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, if one is buffered. Errors mean the stream
    /// cannot be resynchronised and should be closed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        // Keep-alive CRLFs between messages (RFC 5626) are skipped.
        let skip = self
            .buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        self.buf.drain(..skip);
        let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return if self.buf.len() > MAX_MESSAGE {
                Err(FrameError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let head = String::from_utf8_lossy(&self.buf[..end]);
        let length = head
            .split("\r\n")
            .skip(1)
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                let name = name.trim();
                (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
                    .then(|| value.trim().parse::<usize>())
            })
            .ok_or(FrameError::BadLength)?
            .map_err(|_| FrameError::BadLength)?;
        let total = end + 4 + length;
        if total > MAX_MESSAGE {
            return Err(FrameError::TooLarge);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(self.buf.drain(..total).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pipelined_and_fragmented_messages() {
        let a = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n";
        let b = b"INFO sip:x SIP/2.0\r\nl: 5\r\n\r\nhello";
        let mut f = Framer::default();
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(a);
        stream.extend_from_slice(b);
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            f.push(chunk);
            while let Some(m) = f.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![a.to_vec(), b.to_vec()]);
    }

    #[test]
    fn hostile_streams_are_errors() {
        let mut f = Framer::default();
        f.push(b"INVITE sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\nbody");
        assert_eq!(f.next_message(), Err(FrameError::BadLength));
        let mut f = Framer::default();
        f.push(b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n");
        assert_eq!(f.next_message(), Err(FrameError::TooLarge));
        let mut f = Framer::default();
        f.push(&vec![b'A'; MAX_MESSAGE + 1]);
        assert_eq!(f.next_message(), Err(FrameError::TooLarge));
    }
}
