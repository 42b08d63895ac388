//! A leg's RTCP: the peer's receiver reports read (its loss and jitter for
//! the call record), and ours sent.

use super::*;

impl Leg {
    pub(in crate::media) fn on_rtcp(&mut self, data: &[u8]) {
        self.rtcp_reports += 1;
        if let Some(r) = crate::rtp::rtcp::report_for(data, self.ssrc) {
            self.peer_report = Some(r);
        }
    }

    /// Sends our RTCP report (SR while we send, else RR) to the peer's RTCP port.
    pub(in crate::media) fn send_rtcp(&mut self, tx: &mut Outbox) {
        let Some(sock) = &self.setup.rtcp else { return };
        let peer = self.streams.iter().max_by_key(|s| s.last_tick).map(|s| {
            let st = s.reorder.stats();
            crate::rtp::rtcp::ReceiverState {
                peer_ssrc: s.ssrc,
                fraction_lost: 0,
                cumulative_lost: st.lost as u32,
                highest_seq: 0,
            }
        });
        let sent = (self.sent > 0).then(|| {
            let ntp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| {
                    ((d.as_secs() + 2_208_988_800) << 32)
                        | (((d.subsec_nanos() as u64) << 32) / 1_000_000_000)
                })
                .unwrap_or(0);
            (
                self.sent as u32,
                (self.sent * FRAME as u64) as u32,
                self.timestamp,
                ntp,
            )
        });
        let mut out = [0u8; 128];
        let n = crate::rtp::rtcp::write_report(&mut out, self.ssrc, sent, peer, b"hookline");
        let to = SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1));
        tx.push(sock.as_raw_fd(), Some(to), &[&out[..n]]);
    }
}
