//! RFC 4733 telephone-event receive: one digit per event, however many packets carry it.

/// Maps an RFC 4733 event code to its key.
pub fn event_key(code: u8) -> Option<char> {
    Some(match code {
        0..=9 => (b'0' + code) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + code - 12) as char,
        _ => return None,
    })
}

/// Turns a stream of telephone-event payloads into key presses.
///
/// An event is identified by its RTP timestamp (RFC 4733 §2.5.1.2): the start
/// packet, its updates and the three redundant end packets share it, so a new
/// key is reported on the first packet with a new timestamp. Losing the first
/// packets therefore delays nothing but the packets themselves.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    last_timestamp: Option<u32>,
}

impl DtmfReceiver {
    /// Feeds one telephone-event payload; returns the key when a new event starts.
    pub fn on_payload(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        if payload.len() < 4 || self.last_timestamp == Some(timestamp) {
            return None;
        }
        let key = event_key(payload[0])?;
        self.last_timestamp = Some(timestamp);
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: u8, end: bool, dur: u16) -> [u8; 4] {
        let d = dur.to_be_bytes();
        [code, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    #[test]
    fn one_key_per_event_including_redundant_ends() {
        let mut rx = DtmfReceiver::default();
        assert_eq!(rx.on_payload(1000, &ev(2, false, 160)), Some('2'));
        assert_eq!(rx.on_payload(1000, &ev(2, false, 320)), None);
        for _ in 0..3 {
            assert_eq!(rx.on_payload(1000, &ev(2, true, 800)), None);
        }
        // The same key pressed again is a new event with a new timestamp.
        assert_eq!(rx.on_payload(3000, &ev(2, true, 800)), Some('2'));
        assert_eq!(rx.on_payload(5000, &ev(11, false, 160)), Some('#'));
    }

    #[test]
    fn junk_is_ignored() {
        let mut rx = DtmfReceiver::default();
        assert_eq!(rx.on_payload(1, &[1, 2]), None);
        assert_eq!(rx.on_payload(2, &ev(99, false, 1)), None);
        assert_eq!(event_key(15), Some('D'));
    }
}
