//! Seeded random draws, the same on every machine: the synthetic worlds,
//! tune's random search and the bootstrap of eval, tune and fit all draw
//! from here.

use crate::ids::mix;

/// A seeded SplitMix64 stream over the contract's `mix`.
pub struct Rng(pub u64);

impl Rng {
    /// Stream `k` of `seed`: one of many independent streams of one seed,
    /// so that work drawn in parallel (a bootstrap's resamples) gives the
    /// same draws whichever thread draws them.
    pub fn stream(seed: u64, k: u64) -> Rng {
        Rng(seed ^ mix(k.wrapping_add(1)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }

    /// An index in `0..n` skewed towards 0 (a heavy head, a long tail).
    pub fn skewed(&mut self, n: usize, power: f64) -> usize {
        ((n as f64 * self.unit().powf(power)) as usize).min(n - 1)
    }
}
