//! Side-by-side benchmarks in rounds. On this kind of VM a server's CPU for
//! the same load drifts from minute to minute (the IVR reference alone moved
//! between 39 % and 52 % from one run to the next), so one pair's ratio
//! spreads by about ±0.1. A benchmark therefore runs several pairs in one
//! run, alternating which side goes first so a drift favours neither, prints
//! every pair's ratio and reports the median pair.

/// One pair: our side, theirs, and ours over theirs.
pub struct Pair<A, B> {
    pub ours: A,
    pub theirs: B,
    pub ratio: f64,
}

pub struct Rounds<A, B> {
    pairs: Vec<Pair<A, B>>,
}

/// Runs `rounds` pairs (at least one): ours first in even rounds, theirs
/// first in odd ones.
pub fn alternate<A, B>(
    rounds: usize,
    mut ours: impl FnMut() -> anyhow::Result<A>,
    mut theirs: impl FnMut() -> anyhow::Result<B>,
    ratio: impl Fn(&A, &B) -> f64,
) -> anyhow::Result<Rounds<A, B>> {
    let mut pairs = Vec::with_capacity(rounds.max(1));
    for round in 0..rounds.max(1) {
        let (a, b) = if round % 2 == 0 {
            let a = ours()?;
            (a, theirs()?)
        } else {
            let b = theirs()?;
            (ours()?, b)
        };
        let r = ratio(&a, &b);
        eprintln!("round {}: ratio {r:.2}", round + 1);
        pairs.push(Pair {
            ours: a,
            theirs: b,
            ratio: r,
        });
    }
    Ok(Rounds { pairs })
}

impl<A, B> Rounds<A, B> {
    /// The pair whose ratio is the median (the lower of the middle two for an
    /// even count: always a pair that ran, so its fields belong together).
    pub fn median(&self) -> &Pair<A, B> {
        let mut order: Vec<usize> = (0..self.pairs.len()).collect();
        order.sort_by(|&i, &j| self.pairs[i].ratio.total_cmp(&self.pairs[j].ratio));
        &self.pairs[order[(order.len() - 1) / 2]]
    }

    /// Every pair's ratio in the order run: `1.12,0.98,1.05`.
    pub fn ratios(&self) -> String {
        self.pairs
            .iter()
            .map(|p| format!("{:.2}", p.ratio))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn alternates_who_goes_first_and_reports_the_median_pair() {
        let log = RefCell::new(Vec::new());
        let ours = [3.0, 1.0, 2.0, 9.0];
        let mut n = 0;
        let mut m = 0;
        let rounds = alternate(
            4,
            || {
                log.borrow_mut().push("ours");
                n += 1;
                Ok(ours[n - 1])
            },
            || {
                log.borrow_mut().push("theirs");
                m += 1;
                Ok(m)
            },
            |a, _| *a,
        )
        .unwrap();
        assert_eq!(
            *log.borrow(),
            ["ours", "theirs", "theirs", "ours", "ours", "theirs", "theirs", "ours"]
        );
        assert_eq!(rounds.ratios(), "3.00,1.00,2.00,9.00");
        let median = rounds.median();
        assert_eq!((median.ours, median.theirs), (2.0, 3));
        assert_eq!(median.ratio, 2.0);
    }

    #[test]
    fn one_round_at_least() {
        let rounds = alternate(0, || Ok(1.5), || Ok(()), |a, _| *a).unwrap();
        assert_eq!(rounds.ratios(), "1.50");
        assert_eq!(rounds.median().ratio, 1.5);
    }
}
