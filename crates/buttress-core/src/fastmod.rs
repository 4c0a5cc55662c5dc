//! `n % d` for a divisor fixed when a structure is built, without a division
//! instruction on the hot path.
//!
//! A ring indexed by a growing counter (the breaker's count window by call, the retry
//! budget's slots by epoch) takes a remainder on every call; a 64-bit division costs
//! tens of cycles. Lemire, Kaser and Kurz, "Faster remainder by direct computation"
//! (2019), turn it into two multiplications, exact for every 32-bit numerator and
//! divisor; larger numerators fall back to `%`.

/// The remainder by one divisor, precomputed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastMod {
    divisor: u64,
    /// `u64::MAX / divisor + 1`, wrapping.
    magic: u64,
}

impl FastMod {
    /// By `divisor`, which must be at least 1 (callers check their configuration).
    pub(crate) fn new(divisor: u32) -> Self {
        let divisor = u64::from(divisor.max(1));
        FastMod {
            divisor,
            magic: (u64::MAX / divisor).wrapping_add(1),
        }
    }

    /// The divisor.
    #[inline]
    pub(crate) fn divisor(self) -> u64 {
        self.divisor
    }

    /// `n % divisor`.
    #[inline]
    pub(crate) fn rem(self, n: u64) -> u64 {
        match u32::try_from(n) {
            Ok(a) => {
                ((u128::from(self.magic.wrapping_mul(u64::from(a))) * u128::from(self.divisor))
                    >> 64) as u64
            }
            Err(_) => n % self.divisor,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn is_the_remainder() {
        for d in [1u32, 2, 3, 7, 10, 32, 100, 1000, 65_537, u32::MAX] {
            let m = FastMod::new(d);
            let d = u64::from(d);
            let edges = [0u64, 1, 2, d - 1, d, d + 1];
            let far = [u32::MAX as u64 - 1, u32::MAX as u64, 1 << 32, u64::MAX];
            for n in edges
                .into_iter()
                .chain(far)
                .chain((0..5000).map(|i| i * 7919))
            {
                assert_eq!(m.rem(n), n % d, "{n} % {d}");
            }
        }
    }
}
