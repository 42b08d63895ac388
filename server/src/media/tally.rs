//! A media worker's own counts of what its legs received, published to the
//! engine-wide counters once per flush.
//!
//! Added to the shared atomics for every packet, the counts kept one cache
//! line moving between the workers' cores on every datagram (perf on an IVR
//! node at 2,000 calls: four in ten of the receive path's samples on that
//! one `lock add`); a worker adds its plain counts once a tick instead.

use std::sync::atomic::Ordering;

use super::worker::MediaStats;

/// Counts since the last [`Tally::publish`].
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) packets_in: u64,
    pub(super) lost: u64,
    pub(super) late: u64,
    pub(super) malformed: u64,
}

impl Tally {
    /// Adds the counts to `stats` (only those that moved) and starts again.
    pub(super) fn publish(&mut self, stats: &MediaStats) {
        let counts = [
            (self.packets_in, &stats.packets_in),
            (self.lost, &stats.lost),
            (self.late, &stats.late),
            (self.malformed, &stats.malformed),
        ];
        for (n, counter) in counts {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        *self = Tally::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counts_reach_the_engine_counters_once() {
        let stats = MediaStats::default();
        let mut tally = Tally {
            packets_in: 50,
            lost: 2,
            late: 1,
            malformed: 0,
        };
        tally.publish(&stats);
        tally.packets_in += 3;
        tally.publish(&stats);
        tally.publish(&stats);
        assert_eq!(stats.packets_in.load(Ordering::Relaxed), 53);
        assert_eq!(stats.lost.load(Ordering::Relaxed), 2);
        assert_eq!(stats.late.load(Ordering::Relaxed), 1);
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 0);
    }
}
