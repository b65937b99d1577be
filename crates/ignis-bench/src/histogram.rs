//! A latency histogram with log-linear buckets (about 3 % wide), so millions of samples cost a
//! fixed 15 KiB and merging the per-thread histograms is an addition.

/// Values below this are counted exactly.
const LINEAR: u64 = 64;
/// Buckets per power of two above `LINEAR`.
const SUB: u64 = 32;
const SUB_BITS: u32 = 5;
const BUCKETS: usize = (LINEAR + (64 - 6) * SUB) as usize;

/// Counts of microsecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

fn index_of(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let exp = 63 - u64::from(value.leading_zeros());
    let sub = (value >> (exp - u64::from(SUB_BITS))) - SUB;
    (LINEAR + (exp - 6) * SUB + sub) as usize
}

/// The middle of a bucket, so a percentile is off by at most half a bucket.
fn value_of(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR {
        return index;
    }
    let exp = (index - LINEAR) / SUB + 6;
    let sub = (index - LINEAR) % SUB;
    let low = (SUB + sub) << (exp - u64::from(SUB_BITS));
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    low + width / 2
}

impl Histogram {
    /// Counts one value.
    pub fn record(&mut self, value: u64) {
        self.counts[index_of(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values were counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value counted.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The non-empty buckets as `(middle value, count)`, lowest first: enough for another
    /// process to merge histograms and take quantiles (`scripts/bench-scale.sh` does).
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(index, count)| (value_of(index).min(self.max), *count))
            .collect()
    }

    /// The value below which a fraction `q` (0..=1) of the samples fall; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return value_of(index).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_narrow() {
        let mut last = 0;
        for value in (0..10_000_000u64)
            .step_by(997)
            .chain([u64::MAX / 2, u64::MAX])
        {
            let index = index_of(value);
            assert!(index >= last, "index went back at {value}");
            assert!(index < BUCKETS);
            last = index;
            let mid = value_of(index);
            let error = mid.abs_diff(value) as f64 / value.max(1) as f64;
            assert!(error <= 0.02, "{value} -> {mid}");
        }
    }

    #[test]
    fn quantiles() {
        let cases: &[(&[u64], f64, u64)] = &[
            (&[], 0.5, 0),
            (&[7], 0.0, 7),
            (&[7], 1.0, 7),
            (&[1, 2, 3, 4], 0.5, 2),
            (&[1, 2, 3, 4], 0.75, 3),
            (&[1, 2, 3, 4], 1.0, 4),
            (&[10, 20, 30, 40, 50, 60, 70, 80, 90, 1000], 0.9, 90),
            (&[10, 20, 30, 40, 50, 60, 70, 80, 90, 1000], 0.99, 1000),
        ];
        for (values, q, expected) in cases {
            let mut h = Histogram::default();
            values.iter().for_each(|v| h.record(*v));
            let got = h.quantile(*q);
            let error = got.abs_diff(*expected) as f64 / (*expected).max(1) as f64;
            assert!(error <= 0.02, "{values:?} q={q}: {got} != {expected}");
        }
    }

    #[test]
    fn merge_adds() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        (0..100).for_each(|v| a.record(v));
        (100..200).for_each(|v| b.record(v));
        a.merge(&b);
        assert_eq!(a.count(), 200);
        assert_eq!(a.max(), 199);
        assert!(a.quantile(0.5).abs_diff(99) <= 2);
    }

    #[test]
    fn buckets_hold_every_sample() {
        let mut h = Histogram::default();
        assert!(h.buckets().is_empty());
        [5, 5, 1000, 1001, 50_000].iter().for_each(|v| h.record(*v));
        let buckets = h.buckets();
        assert_eq!(buckets.iter().map(|(_, c)| c).sum::<u64>(), 5);
        assert_eq!(buckets[0], (5, 2));
        assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0));
        // The top bucket's middle is within its 3 % and never past the largest sample.
        let top = buckets.last().map_or(0, |b| b.0);
        assert!((48_500..=50_000).contains(&top), "{top}");
    }
}
