//! Delivery accounting for a numbered stream: which sequence numbers one client received,
//! and from that what it missed, got twice or got out of order.

/// Sequence numbers at or past this are not tracked one by one (a bitset that large would be
/// a client's memory for nothing): they count as unexpected.
pub const MAX_TRACKED: u64 = 1 << 22;

/// What one client received of the stream, updated one delivery at a time.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// Bit `seq` is set once `seq` has arrived.
    seen: Vec<u64>,
    received: u64,
    duplicated: u64,
    out_of_order: u64,
    untracked: u64,
    highest: Option<u64>,
}

/// The accounting of one client (or, summed, of many) against the stream `0..expected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Sequence numbers `0..expected` the client should have received.
    pub expected: u64,
    /// Deliveries, duplicates included.
    pub received: u64,
    /// Distinct sequence numbers of `0..expected` received.
    pub unique: u64,
    /// Sequence numbers of `0..expected` never received.
    pub missing: u64,
    /// Deliveries of a sequence number already received.
    pub duplicated: u64,
    /// First deliveries of a number lower than one received before.
    pub out_of_order: u64,
    /// Distinct numbers outside `0..expected`.
    pub unexpected: u64,
}

impl SeqTracker {
    /// Notes one delivery of `seq`.
    pub fn record(&mut self, seq: u64) {
        self.received += 1;
        if seq >= MAX_TRACKED {
            self.untracked += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicated += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        if self.highest.is_some_and(|h| seq < h) {
            self.out_of_order += 1;
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
    }

    /// The accounting against the stream `0..expected`.
    pub fn tally(&self, expected: u64) -> Tally {
        let mut unique = 0;
        let mut beyond = self.untracked;
        for (i, word) in self.seen.iter().enumerate() {
            let first = i as u64 * 64;
            let in_range = if first + 64 <= expected {
                *word
            } else if first >= expected {
                0
            } else {
                word & ((1u64 << (expected - first)) - 1)
            };
            unique += u64::from(in_range.count_ones());
            beyond += u64::from((word & !in_range).count_ones());
        }
        Tally {
            expected,
            received: self.received,
            unique,
            missing: expected - unique,
            duplicated: self.duplicated,
            out_of_order: self.out_of_order,
            unexpected: beyond,
        }
    }
}

/// The accounting of the deliveries `seqs`, in the order they arrived, against `0..expected`.
pub fn tally(seqs: &[u64], expected: u64) -> Tally {
    let mut tracker = SeqTracker::default();
    for seq in seqs {
        tracker.record(*seq);
    }
    tracker.tally(expected)
}

/// The tallies of many clients together.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Clients summed.
    pub clients: u64,
    /// Their tallies, summed.
    pub total: Tally,
    /// Clients that missed nothing.
    pub complete: u64,
    /// The lowest share of the stream one client received, 0..=1.
    pub worst_share: f64,
}

impl Summary {
    /// Adds one client's tally.
    pub fn add(&mut self, t: &Tally) {
        let share = if t.expected == 0 {
            1.0
        } else {
            t.unique as f64 / t.expected as f64
        };
        self.worst_share = if self.clients == 0 {
            share
        } else {
            self.worst_share.min(share)
        };
        self.clients += 1;
        self.complete += u64::from(t.missing == 0);
        let s = &mut self.total;
        s.expected += t.expected;
        s.received += t.received;
        s.unique += t.unique;
        s.missing += t.missing;
        s.duplicated += t.duplicated;
        s.out_of_order += t.out_of_order;
        s.unexpected += t.unexpected;
    }

    /// Adds another summary's clients.
    pub fn merge(&mut self, other: &Summary) {
        if other.clients == 0 {
            return;
        }
        self.worst_share = if self.clients == 0 {
            other.worst_share
        } else {
            self.worst_share.min(other.worst_share)
        };
        self.clients += other.clients;
        self.complete += other.complete;
        let (s, o) = (&mut self.total, &other.total);
        s.expected += o.expected;
        s.received += o.received;
        s.unique += o.unique;
        s.missing += o.missing;
        s.duplicated += o.duplicated;
        s.out_of_order += o.out_of_order;
        s.unexpected += o.unexpected;
    }

    /// Share of the expected deliveries that arrived (at least once), 0..=1.
    pub fn delivery_share(&self) -> f64 {
        if self.total.expected == 0 {
            return 1.0;
        }
        self.total.unique as f64 / self.total.expected as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(
        expected: u64,
        received: u64,
        unique: u64,
        duplicated: u64,
        out_of_order: u64,
        unexpected: u64,
    ) -> Tally {
        Tally {
            expected,
            received,
            unique,
            missing: expected - unique,
            duplicated,
            out_of_order,
            unexpected,
        }
    }

    #[test]
    fn missing_duplicated_and_out_of_order() {
        let cases: &[(&[u64], u64, Tally)] = &[
            (&[], 0, t(0, 0, 0, 0, 0, 0)),
            (&[], 3, t(3, 0, 0, 0, 0, 0)),
            (&[0, 1, 2], 3, t(3, 3, 3, 0, 0, 0)),
            // A gap: 1 and 3 never came.
            (&[0, 2, 4], 5, t(5, 3, 3, 0, 0, 0)),
            // The same number twice is one duplicate, not out of order.
            (&[0, 1, 1, 2], 3, t(3, 4, 3, 1, 0, 0)),
            // A replay after newer ones: late, so out of order; its repeat a duplicate.
            (&[0, 3, 1, 2, 2, 4], 5, t(5, 6, 5, 1, 2, 0)),
            // Numbers past the stream count apart and do not fill gaps.
            (&[0, 7, 9, 9], 3, t(3, 4, 1, 1, 0, 2)),
            // Past the tracked range: received, unexpected, never indexed.
            (&[u64::MAX, 0], 1, t(1, 2, 1, 0, 0, 1)),
            // Across bitset words: 63, 64 and 127 are the edges.
            (&[63, 64, 127, 128], 128, t(128, 4, 3, 0, 0, 1)),
            (&[64, 63], 65, t(65, 2, 2, 0, 1, 0)),
        ];
        for (seqs, expected, want) in cases {
            assert_eq!(tally(seqs, *expected), *want, "{seqs:?} of {expected}");
        }
    }

    #[test]
    fn a_summary_adds_clients_and_keeps_the_worst() {
        let mut a = Summary::default();
        a.add(&tally(&[0, 1, 2, 3], 4));
        a.add(&tally(&[0, 2], 4));
        let mut b = Summary::default();
        b.add(&tally(&[0, 1, 1, 3], 4));
        a.merge(&b);
        a.merge(&Summary::default());
        assert_eq!(a.clients, 3);
        assert_eq!(a.complete, 1);
        assert_eq!(a.total, t(12, 10, 9, 1, 0, 0));
        assert!((a.worst_share - 0.5).abs() < 1e-9);
        assert!((a.delivery_share() - 0.75).abs() < 1e-9);
        assert_eq!(Summary::default().delivery_share(), 1.0);
    }
}
