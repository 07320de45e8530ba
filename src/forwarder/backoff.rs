//! Reconnect backoff: exponential from `retry_ms_min` to `retry_ms_max`, with "equal jitter"
//! (each wait drawn uniformly from [half, all] of the current step) so gateways that lost the
//! same uplink do not come back in lockstep. Pure: the random source is a seeded xorshift.

#[derive(Clone, Debug)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(min_ms: u64, max_ms: u64, seed: u64) -> Backoff {
        Backoff {
            min_ms: min_ms.max(1),
            max_ms: max_ms.max(min_ms.max(1)),
            failures: 0,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    /// After a success: the next failure waits `retry_ms_min` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The wait after one more failure, in ms.
    pub fn next_ms(&mut self) -> u64 {
        let step = self
            .min_ms
            .saturating_mul(1u64 << self.failures.min(40))
            .min(self.max_ms);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        half + self.random() % (step - half + 1)
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(100, 1000, 7);
        let waits: Vec<u64> = (0..8).map(|_| b.next_ms()).collect();
        let steps = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (w, s) in waits.iter().zip(steps) {
            assert!((s / 2..=s).contains(w), "{w} not in [{}, {s}]", s / 2);
        }
        assert_eq!(b.failures(), 8);
        b.reset();
        assert!(b.next_ms() <= 100);
        // Different seeds give different waits (jitter), same seed the same.
        let a: Vec<u64> = {
            let mut b = Backoff::new(100, 100_000, 1);
            (0..10).map(|_| b.next_ms()).collect()
        };
        let c: Vec<u64> = {
            let mut b = Backoff::new(100, 100_000, 2);
            (0..10).map(|_| b.next_ms()).collect()
        };
        assert_ne!(a, c);
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(u64::MAX / 2, u64::MAX, 3);
        for _ in 0..100 {
            // Would panic (debug overflow) if the arithmetic did not saturate.
            assert!(b.next_ms() >= u64::MAX / 4);
        }
    }
}
