//! The two windows the rates are computed over: the last N calls, or the last D of
//! time in B buckets. Both record in O(1) with atomics only and keep running totals, so
//! reading the rates at a trip decision is O(1) too.
//!
//! Ordering: every atomic here is `Relaxed`. The windows are statistics: each counter
//! is only ever changed by read-modify-write operations whose deltas are exact, so at
//! quiescence every running total equals the sum of what its slots or buckets hold,
//! whatever the interleaving; no other memory is published through these atomics. A
//! reader racing with a writer may see a total one step behind, which at worst moves a
//! trip decision by one call. Totals are kept as wrapping `u64` and read as signed
//! values clamped at zero, because a subtraction may land before the matching addition.

use crate::Nanos;
use crate::fastmod::FastMod;
use crate::sync::{AtomicU64, Ordering::Relaxed, Padded};

/// What a window holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

#[inline]
fn read(c: &AtomicU64) -> u64 {
    // Wrapping counter read as signed: a transient negative reads as zero.
    (c.load(Relaxed) as i64).max(0) as u64
}

#[inline]
fn adjust(c: &AtomicU64, old: u64, new: u64) {
    if new > old {
        c.fetch_add(new - old, Relaxed);
    } else if old > new {
        // Wraps below zero transiently if the matching increment has not landed yet.
        c.fetch_sub(old - new, Relaxed);
    }
}

/// The last `size` outcomes, as a ring of 2-bit slots.
///
/// Slot `i` lives in `ring[i / 32]` at bits `2 * (i % 32)` (failed) and
/// `2 * (i % 32) + 1` (slow); `00` is a success (or a slot not written yet). `pos`
/// counts the outcomes written since the window was last cleared: the next outcome
/// goes to slot `pos % size`, replacing the oldest, and the window holds
/// `min(pos, size)` outcomes. `failures` and `slow` are the popcounts of the ring's
/// failed and slow bits, adjusted by exactly the bits each write changes. A success
/// into a full window of successes is not written at all (it would change nothing),
/// so a healthy breaker's calls only read these lines.
#[derive(Debug)]
pub(crate) struct CountWindow {
    /// The window's size N, and `idx % N` without a division on every outcome.
    size: FastMod,
    ring: Box<[AtomicU64]>,
    /// Written on every outcome written: on lines of their own.
    pos: Padded<AtomicU64>,
    failures: AtomicU64,
    slow: AtomicU64,
}

const FAILED_BITS: u64 = 0x5555_5555_5555_5555;
const SLOW_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        let words = (size as usize).div_ceil(32);
        CountWindow {
            size: FastMod::new(size),
            pos: Padded(AtomicU64::new(0)),
            ring: (0..words).map(|_| AtomicU64::new(0)).collect(),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    /// Records one outcome, replacing the oldest. Returns the counts after it, or `None`
    /// when the outcome cannot have raised a rate (a success into a full window), so the
    /// caller can skip the trip check.
    // Always inlined: it is most of the closed breaker's per-call work, and a call
    // would cost more than the body on the success path.
    #[inline(always)]
    pub(crate) fn record(&self, failed: bool, slow: bool) -> Option<Counts> {
        if !failed && !slow && self.all_successes() {
            // A success into a full window of successes: whichever slot it replaced,
            // the window is the same N successes after it, so nothing is written (no
            // shared line is dirtied on the common path). The ring position only
            // matters while some slot holds something else, and then this is not
            // taken, so a failure still leaves exactly N outcomes after it entered.
            return None;
        }
        let idx = self.pos.fetch_add(1, Relaxed);
        let slot = self.slot(idx);
        let word = &self.ring[(slot / 32) as usize];
        let shift = (slot % 32) * 2;
        let new = (failed as u64) | ((slow as u64) << 1);
        let mut cur = word.load(Relaxed);
        let old = loop {
            let old = (cur >> shift) & 0b11;
            if old == new {
                // The slot already holds this outcome: writing it again changes nothing.
                break old;
            }
            let next = (cur & !(0b11 << shift)) | (new << shift);
            match word.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
                Ok(_) => break old,
                Err(actual) => cur = actual,
            }
        };
        adjust(&self.failures, old & 1, new & 1);
        adjust(&self.slow, old >> 1, new >> 1);
        if new == 0 && idx >= self.size.divisor() {
            return None;
        }
        Some(Counts {
            calls: (idx + 1).min(self.size.divisor()),
            failures: read(&self.failures),
            slow: read(&self.slow),
        })
    }

    /// Whether the window is full and holds successes only: three loads of lines that
    /// are only written when that changes. Racing with a writer, the totals may be a
    /// step behind (see the module docs): at worst a failure stays one call longer.
    #[inline(always)]
    fn all_successes(&self) -> bool {
        self.pos.load(Relaxed) >= self.size.divisor()
            && read(&self.failures) == 0
            && read(&self.slow) == 0
    }

    /// `idx % size`.
    #[inline]
    fn slot(&self, idx: u64) -> u64 {
        self.size.rem(idx)
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            calls: self.pos.load(Relaxed).min(self.size.divisor()),
            failures: read(&self.failures),
            slow: read(&self.slow),
        }
    }

    /// Empties the window. Each ring word is swapped out and its bits subtracted, so a
    /// write racing with the clear still leaves the totals equal to the ring's bits.
    pub(crate) fn clear(&self) {
        for word in self.ring.iter() {
            let old = word.swap(0, Relaxed);
            adjust(&self.failures, (old & FAILED_BITS).count_ones() as u64, 0);
            adjust(&self.slow, (old & SLOW_BITS).count_ones() as u64, 0);
        }
        self.pos.store(0, Relaxed);
    }
}

/// One bucket of a time window: the epoch it currently holds and that epoch's counts.
#[derive(Debug)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// The outcomes of the last `buckets * bucket_len`.
///
/// Time is cut into epochs of `bucket_len`; epoch `e` lives in bucket `e % buckets`.
/// `head` is the latest epoch the window has advanced to; the window holds epochs
/// `head - buckets + 1 ..= head`. Advancing from `head` to `e` is done by the one
/// thread whose CAS moves `head`: it re-stamps the buckets of the epochs entering the
/// window and subtracts what they held (an expired epoch) from the running totals,
/// so every bucket is expired once per lap and never rescanned. An outcome whose
/// bucket no longer holds its epoch (it is older than the window) is not counted.
///
/// Every count added to a bucket is added to the totals and every count taken out of
/// a bucket is subtracted, so the totals always equal the buckets' sum. The one
/// imprecision is at a bucket boundary under contention: an outcome added to a
/// bucket between its re-stamping and the emptying of its previous epoch's counts
/// leaves the window with that older epoch (early, by less than one lap).
#[derive(Debug)]
pub(crate) struct TimeWindow {
    bucket_len: u64,
    buckets: Box<[Bucket]>,
    /// Written on every outcome (with the totals below): on lines of their own.
    head: Padded<AtomicU64>,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl TimeWindow {
    pub(crate) fn new(duration: Nanos, buckets: u32) -> Self {
        TimeWindow {
            bucket_len: (duration.as_u64() / buckets as u64).max(1),
            buckets: (0..buckets as u64)
                .map(|i| Bucket {
                    epoch: AtomicU64::new(i),
                    calls: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    slow: AtomicU64::new(0),
                })
                .collect(),
            head: Padded(AtomicU64::new(0)),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    #[inline]
    fn epoch(&self, now: Nanos) -> u64 {
        now.as_u64() / self.bucket_len
    }

    /// Moves the window forward to `epoch`, expiring the buckets it leaves behind.
    fn advance(&self, epoch: u64) {
        let n = self.buckets.len() as u64;
        let mut head = self.head.load(Relaxed);
        while epoch > head {
            match self
                .head
                .compare_exchange_weak(head, epoch, Relaxed, Relaxed)
            {
                Ok(_) => {
                    // Epochs head+1..=epoch enter; at most one lap of buckets changes.
                    let first = (head + 1).max(epoch.saturating_sub(n - 1));
                    for e in first..=epoch {
                        let b = &self.buckets[(e % n) as usize];
                        // fetch_max: a slower rotator of an older lap never stamps
                        // a bucket backwards. Only a bucket that held an older epoch
                        // is emptied: one already stamped `e` may hold outcomes of `e`.
                        if b.epoch.fetch_max(e, Relaxed) < e {
                            adjust(&self.calls, b.calls.swap(0, Relaxed), 0);
                            adjust(&self.failures, b.failures.swap(0, Relaxed), 0);
                            adjust(&self.slow, b.slow.swap(0, Relaxed), 0);
                        }
                    }
                    return;
                }
                Err(actual) => head = actual,
            }
        }
    }

    #[inline]
    pub(crate) fn record(&self, failed: bool, slow: bool, now: Nanos) -> Option<Counts> {
        let epoch = self.epoch(now);
        self.advance(epoch);
        let b = &self.buckets[(epoch % self.buckets.len() as u64) as usize];
        if b.epoch.load(Relaxed) != epoch {
            // Older than the window (a caller that read the clock long ago).
            return None;
        }
        // Bucket first, then total: a rotation racing with this either takes the
        // bucket's share with it or leaves it (and the total) for the next lap.
        b.calls.fetch_add(1, Relaxed);
        self.calls.fetch_add(1, Relaxed);
        if failed {
            b.failures.fetch_add(1, Relaxed);
            self.failures.fetch_add(1, Relaxed);
        }
        if slow {
            b.slow.fetch_add(1, Relaxed);
            self.slow.fetch_add(1, Relaxed);
        }
        Some(self.totals())
    }

    fn totals(&self) -> Counts {
        Counts {
            calls: read(&self.calls),
            failures: read(&self.failures),
            slow: read(&self.slow),
        }
    }

    pub(crate) fn counts(&self, now: Nanos) -> Counts {
        self.advance(self.epoch(now));
        self.totals()
    }

    pub(crate) fn clear(&self) {
        for b in self.buckets.iter() {
            adjust(&self.calls, b.calls.swap(0, Relaxed), 0);
            adjust(&self.failures, b.failures.swap(0, Relaxed), 0);
            adjust(&self.slow, b.slow.swap(0, Relaxed), 0);
        }
    }
}

/// Either window.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// A count window whose last N outcomes are all successes: one more success
    /// changes nothing.
    #[inline]
    pub(crate) fn is_count_of_successes(&self) -> bool {
        match self {
            Window::Count(w) => w.all_successes(),
            Window::Time(_) => false,
        }
    }

    #[inline]
    pub(crate) fn needs_time(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    #[inline]
    pub(crate) fn record(&self, failed: bool, slow: bool, now: Nanos) -> Option<Counts> {
        match self {
            Window::Count(w) => w.record(failed, slow),
            Window::Time(w) => w.record(failed, slow, now),
        }
    }

    pub(crate) fn counts(&self, now: Nanos) -> Counts {
        match self {
            Window::Count(w) => w.counts(),
            Window::Time(w) => w.counts(now),
        }
    }

    pub(crate) fn clear(&self) {
        match self {
            Window::Count(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn count_window_slides() {
        let w = CountWindow::new(3);
        assert_eq!(w.record(true, false).unwrap().failures, 1);
        w.record(false, true);
        let c = w.record(false, false).unwrap();
        assert_eq!((c.calls, c.failures, c.slow), (3, 1, 1));
        // The first outcome (a failure) leaves.
        let c = w.record(false, false);
        assert_eq!(c, None, "a success into a full window skips the check");
        assert_eq!(
            w.counts(),
            Counts {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
        w.record(true, true);
        assert_eq!(
            w.counts(),
            Counts {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.clear();
        assert_eq!(w.counts(), Counts::default());
    }

    #[test]
    fn a_success_into_a_full_healthy_window_writes_nothing() {
        let w = CountWindow::new(3);
        for _ in 0..3 {
            w.record(false, false);
        }
        let pos = w.pos.load(Relaxed);
        assert_eq!(w.record(false, false), None);
        assert_eq!(w.pos.load(Relaxed), pos, "not written");
        // A failure still leaves after exactly 3 more outcomes.
        w.record(true, false);
        w.record(false, false);
        w.record(false, false);
        assert_eq!(w.counts().failures, 1);
        w.record(false, false);
        assert_eq!(w.counts().failures, 0);
        assert_eq!(w.counts().calls, 3);
    }

    #[test]
    fn count_window_spans_ring_words() {
        let w = CountWindow::new(70);
        for i in 0..200u64 {
            w.record(i % 3 == 0, i % 5 == 0);
        }
        let last: Vec<u64> = (130..200).collect();
        let f = last.iter().filter(|i| *i % 3 == 0).count() as u64;
        let s = last.iter().filter(|i| *i % 5 == 0).count() as u64;
        assert_eq!(
            w.counts(),
            Counts {
                calls: 70,
                failures: f,
                slow: s
            }
        );
    }

    #[test]
    fn time_window_expires_whole_buckets() {
        // 1 s in 4 buckets of 250 ms.
        let w = TimeWindow::new(Nanos::from_secs(1), 4);
        w.record(true, false, Nanos::from_millis(0));
        w.record(false, false, Nanos::from_millis(260));
        w.record(true, true, Nanos::from_millis(999));
        assert_eq!(
            w.counts(Nanos::from_millis(999)),
            Counts {
                calls: 3,
                failures: 2,
                slow: 1
            }
        );
        // Epoch 0 (0..250 ms) leaves at 1 s.
        assert_eq!(
            w.counts(Nanos::from_millis(1000)),
            Counts {
                calls: 2,
                failures: 1,
                slow: 1
            }
        );
        // A long silence empties it.
        assert_eq!(w.counts(Nanos::from_secs(60)), Counts::default());
        // A late outcome from before the window is not counted.
        assert_eq!(w.record(true, false, Nanos::from_millis(500)), None);
        assert_eq!(w.counts(Nanos::from_secs(60)), Counts::default());
    }
}
