//! Seeded, bounded randomness for the test suites, so that CI runs every fuzz test in a fixed
//! time and a failure found there replays on any machine:
//!
//! - [`config`]: the proptest configuration of every property-based fuzz test. The seed is
//!   `CRUST_FUZZ_SEED` (default fixed) and the case count `CRUST_FUZZ_CASES` (default the
//!   test's own); no failure files are written into the source tree.
//! - [`Rng`]: a tiny xorshift64* generator for tests that draw their own numbers (byte
//!   mutations, a churn test's kill instants), replayable from one `u64`.
//!
//! A dev-dependency only: nothing in crustd links it.

use proptest::test_runner::{Config, RngSeed};

/// The seed when `CRUST_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x5eed_0007;

/// The proptest configuration for a fuzz test that runs `default_cases` cases unless
/// `CRUST_FUZZ_CASES` says otherwise; prints the seed it uses so a failure can be replayed.
pub fn config(default_cases: u32) -> Config {
    let seed = env_number("CRUST_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    eprintln!("fuzz seed {seed} (set CRUST_FUZZ_SEED to change)");
    Config {
        cases: env_number("CRUST_FUZZ_CASES").map_or(default_cases, |n| n as u32),
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

/// An environment variable as a number; unset or not a number is `None`.
pub fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// xorshift64*: small and seeded, so a run can be replayed from its seed. Not for anything
/// but tests (a zero seed stays zero: give it a non-zero one).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 for `n` of 0 or 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_replays_from_its_seed_and_stays_in_range() {
        let (mut a, mut b) = (Rng(42), Rng(42));
        let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_eq!(
            first
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            8
        );
        assert!((0..1000).all(|_| a.below(7) < 7));
        assert_eq!(a.below(0), 0);
        assert_eq!(a.bytes(5).len(), 5);
    }

    #[test]
    fn the_config_keeps_the_tests_case_count_and_a_fixed_seed() {
        if std::env::var_os("CRUST_FUZZ_CASES").is_none()
            && std::env::var_os("CRUST_FUZZ_SEED").is_none()
        {
            let c = config(123);
            assert_eq!(c.cases, 123);
            assert_eq!(c.rng_seed, RngSeed::Fixed(DEFAULT_SEED));
            assert!(c.failure_persistence.is_none());
        }
    }
}
