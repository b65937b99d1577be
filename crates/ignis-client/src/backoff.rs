//! Exponential backoff with jitter between reconnection attempts, computed as socket.io-client
//! does: `min * 2^attempt`, moved up or down by a random share of itself, capped at `max`.

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    attempts: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration, jitter: f64) -> Backoff {
        Backoff {
            min,
            max,
            jitter,
            attempts: 0,
        }
    }

    /// Attempts since the last reset.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    pub(crate) fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The delay before the next attempt; counts the attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.delay_for(self.attempts, rand::random::<f64>());
        self.attempts = self.attempts.saturating_add(1);
        delay
    }

    /// The delay of attempt `attempt` for a random draw `r` in `[0, 1)`.
    fn delay_for(&self, attempt: u32, r: f64) -> Duration {
        let min = self.min.as_secs_f64() * 1000.0;
        let max = self.max.as_secs_f64() * 1000.0;
        let mut ms = min * 2f64.powi(attempt.min(64) as i32);
        if self.jitter > 0.0 {
            let deviation = (r * self.jitter * ms).floor();
            // The low bit of a second draw from the same number picks the direction.
            ms = if ((r * 10.0).floor() as u64) & 1 == 0 {
                ms - deviation
            } else {
                ms + deviation
            };
        }
        let ms = ms.min(max).max(0.0);
        Duration::from_secs_f64(ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_and_caps_without_jitter() {
        let b = Backoff::new(ms(100), ms(1000), 0.0);
        let cases = [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (60, 1000),
        ];
        for (attempt, expected) in cases {
            assert_eq!(b.delay_for(attempt, 0.3), ms(expected), "attempt {attempt}");
        }
    }

    #[test]
    fn jitter_moves_both_ways_within_the_factor() {
        let b = Backoff::new(ms(1000), ms(60_000), 0.5);
        // r = 0.05: floor(0.5) = 0 (even) → down by floor(0.05 * 0.5 * 1000) = 25.
        assert_eq!(b.delay_for(0, 0.05), ms(975));
        // r = 0.15: floor(1.5) = 1 (odd) → up by 75.
        assert_eq!(b.delay_for(0, 0.15), ms(1075));
        for i in 0..100 {
            let r = f64::from(i) / 100.0;
            let d = b.delay_for(2, r);
            assert!(d >= ms(2000) && d <= ms(6000), "r {r}: {d:?}");
        }
    }

    #[test]
    fn counts_and_resets() {
        let mut b = Backoff::new(ms(10), ms(100), 0.0);
        assert_eq!(b.next_delay(), ms(10));
        assert_eq!(b.next_delay(), ms(20));
        assert_eq!(b.attempts(), 2);
        b.reset();
        assert_eq!(b.next_delay(), ms(10));
    }

    #[test]
    fn zero_and_huge_values_do_not_overflow() {
        let b = Backoff::new(Duration::ZERO, Duration::ZERO, 1.0);
        assert_eq!(b.delay_for(u32::MAX, 0.99), Duration::ZERO);
        let b = Backoff::new(Duration::from_secs(u64::MAX / 4), ms(5), 0.5);
        assert_eq!(b.delay_for(u32::MAX, 0.5), ms(5));
    }
}
