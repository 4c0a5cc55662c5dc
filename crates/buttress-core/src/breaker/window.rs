//! The two windows the rates are computed over: the last N calls, or the last D of
//! time in B buckets. Both record in O(1) with atomics only and keep running totals, so
//! reading the rates at a trip decision is O(1) too.
//!
//! Generations: a window holds the outcomes of one closed generation of the breaker.
//! Each word an outcome is written to (the count window's ring words and position, the
//! time window's bucket counters) carries the generation it belongs to in its top 24
//! bits, and a write is a compare-and-swap that only succeeds on a word of the writer's
//! generation. [`Window::clear`] re-stamps every word with the generation the breaker
//! enters (never with an older one than the word has), emptying it. So a writer that
//! checked the state word before a transition and writes after it cannot put its
//! outcome in a later generation's window: the stamp check and the write are one
//! atomic step, ordered against the re-stamp by the word's modification order.
//!
//! Ordering: the windows are statistics: each counter is only ever changed by
//! read-modify-write operations whose deltas are exact, so at quiescence every running
//! total equals the sum of what its slots or buckets hold, whatever the interleaving. A
//! reader racing with a writer may see a total one step behind, which at worst moves a
//! trip decision by one call. Totals are kept as wrapping `u64` and read as signed
//! values clamped at zero, because a subtraction may land before the matching addition.
//! Every atomic here is `Relaxed` but one pair: a re-stamp publishes the word a writer
//! checks first (the count window's position, a bucket's call count) last, with
//! `Release`, and a writer's successful check of it is `Acquire`; so a writer of the new
//! generation that got past that word finds the window's other words re-stamped too,
//! and is not turned away half-way (which would leave a call counted without its
//! outcome).

use super::state::{GEN_MASK, generation_is_after};
use crate::Nanos;
use crate::fastmod::FastMod;
use crate::sync::{
    AtomicU64,
    Ordering::{self, Acquire, Relaxed, Release},
    Padded,
};

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

/// Where a word's generation stamp lives: bits 40..64 (24 bits, as in the state word).
const STAMP_SHIFT: u32 = 40;
/// The rest of a stamped word: a count, or the ring's slots.
const COUNT_MASK: u64 = (1 << STAMP_SHIFT) - 1;

/// An empty word stamped with `generation`.
#[inline]
fn stamp(generation: u32) -> u64 {
    ((generation & GEN_MASK) as u64) << STAMP_SHIFT
}

/// Whether `word` is stamped with `generation`.
#[inline]
fn stamped(word: u64, generation: u32) -> bool {
    word & !COUNT_MASK == stamp(generation)
}

/// Whether `word`'s stamp is older than `generation` (24-bit wrapping, as generations
/// are): only then does a re-stamp replace it, so that a late re-stamp never empties
/// the window of a newer generation.
#[inline]
fn older(word: u64, generation: u32) -> bool {
    generation_is_after(generation, (word >> STAMP_SHIFT) as u32)
}

/// Re-stamps `word` with `generation` (emptying it) unless its stamp is not older,
/// and returns what it held, or 0. `order`: of the successful exchange.
#[inline]
fn restamp(word: &AtomicU64, generation: u32, order: Ordering) -> u64 {
    let mut cur = word.load(Relaxed);
    while older(cur, generation) {
        match word.compare_exchange_weak(cur, stamp(generation), order, Relaxed) {
            Ok(_) => return cur & COUNT_MASK,
            Err(actual) => cur = actual,
        }
    }
    0
}

/// Adds one to a stamped counter if it is stamped `generation` (and not full): whether
/// it did. `order`: of the successful exchange.
#[inline]
fn increment(c: &AtomicU64, generation: u32, order: Ordering) -> bool {
    let mut cur = c.load(Relaxed);
    while stamped(cur, generation) && cur & COUNT_MASK != COUNT_MASK {
        match c.compare_exchange_weak(cur, cur + 1, order, Relaxed) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
    false
}

/// The last `size` outcomes, as a ring of 2-bit slots.
///
/// Slot `i` lives in `ring[i / 16]` at bits `2 * (i % 16)` (failed) and
/// `2 * (i % 16) + 1` (slow); `00` is a success (or a slot not written yet); each ring
/// word carries its generation stamp above its 16 slots. `pos` (stamped too) counts the
/// outcomes written since the window was last cleared: the next outcome goes to slot
/// `pos % size`, replacing the oldest, and the window holds `min(pos, size)` outcomes
/// (past `2 * size`, the count goes back to `size`, which keeps both). `failures` and
/// `slow` are the popcounts of the ring's failed and slow bits, adjusted by exactly the
/// bits each write changes. A success into a full window of successes is not written
/// at all (it would change nothing), so a healthy breaker's calls only read these
/// lines.
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

/// Slots per ring word: 32 bits of slots, below the stamp.
const SLOTS_PER_WORD: u64 = 16;
const FAILED_BITS: u64 = 0x5555_5555;
const SLOW_BITS: u64 = 0xaaaa_aaaa;

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        let words = (size as usize).div_ceil(SLOTS_PER_WORD as usize);
        CountWindow {
            size: FastMod::new(size),
            pos: Padded(AtomicU64::new(0)),
            ring: (0..words).map(|_| AtomicU64::new(0)).collect(),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    /// Records one outcome of closed generation `generation`, replacing the oldest.
    /// Returns the counts after it, or `None` when the outcome cannot have raised a
    /// rate (a success into a full window) or is not counted (the window is not, or no
    /// longer, that generation's), so the caller can skip the trip check.
    // Always inlined: it is most of the closed breaker's per-call work, and a call
    // would cost more than the body on the success path.
    #[inline(always)]
    pub(crate) fn record(&self, failed: bool, slow: bool, generation: u32) -> Option<Counts> {
        if !failed && !slow && self.all_successes() {
            // A success into a full window of successes: whichever slot it replaced,
            // the window is the same N successes after it, so nothing is written (no
            // shared line is dirtied on the common path). The ring position only
            // matters while some slot holds something else, and then this is not
            // taken, so a failure still leaves exactly N outcomes after it entered.
            return None;
        }
        let idx = self.claim(generation)?;
        let slot = self.slot(idx);
        let word = &self.ring[(slot / SLOTS_PER_WORD) as usize];
        let shift = (slot % SLOTS_PER_WORD) * 2;
        let new = (failed as u64) | ((slow as u64) << 1);
        let mut cur = word.load(Relaxed);
        let old = loop {
            if !stamped(cur, generation) {
                // Re-stamped for a newer generation since the claim (see `claim`: not
                // an older one), which also resets `pos`, so the claim is gone too.
                return None;
            }
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

    /// Takes the next position, if `pos` is stamped `generation`.
    #[inline]
    fn claim(&self, generation: u32) -> Option<u64> {
        let size = self.size.divisor();
        let mut cur = self.pos.load(Relaxed);
        loop {
            if !stamped(cur, generation) {
                // Another generation's window (a writer that loaded the state word
                // before a transition), or not yet re-stamped for this one (an outcome
                // that lands as if before the re-stamp, which empties the window).
                return None;
            }
            let idx = cur & COUNT_MASK;
            let next = if idx + 1 == 2 * size { size } else { idx + 1 };
            // Acquire on success: pairs with the Release of the re-stamp of `pos` in
            // `clear` (the claims after it continue its release sequence, being
            // read-modify-writes), which re-stamps the ring words first: the ring word
            // this claim writes next is seen re-stamped, not older than `generation`.
            match self
                .pos
                .compare_exchange_weak(cur, stamp(generation) | next, Acquire, Relaxed)
            {
                Ok(_) => return Some(idx),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Whether the window is full and holds successes only: three loads of lines that
    /// are only written when that changes. Racing with a writer, the totals may be a
    /// step behind (see the module docs): at worst a failure stays one call longer.
    #[inline(always)]
    fn all_successes(&self) -> bool {
        self.pos.load(Relaxed) & COUNT_MASK >= self.size.divisor()
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
            calls: (self.pos.load(Relaxed) & COUNT_MASK).min(self.size.divisor()),
            failures: read(&self.failures),
            slow: read(&self.slow),
        }
    }

    /// Empties the window for `generation`. Each ring word older than it is re-stamped
    /// empty and its bits subtracted, so a write racing with the clear still leaves the
    /// totals equal to the ring's bits; `pos` is re-stamped last.
    pub(crate) fn clear(&self, generation: u32) {
        for word in self.ring.iter() {
            // Relaxed: published by the Release below.
            let old = restamp(word, generation, Relaxed);
            adjust(&self.failures, (old & FAILED_BITS).count_ones() as u64, 0);
            adjust(&self.slow, (old & SLOW_BITS).count_ones() as u64, 0);
        }
        // Release: pairs with the Acquire of `claim` (see there).
        restamp(&self.pos, generation, Release);
    }
}

/// One bucket of a time window: the epoch it currently holds and that epoch's counts
/// (each stamped with the window's generation, the count in its low 40 bits).
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
/// leaves the window with that older epoch (early, by less than one lap). Expiring a
/// bucket keeps its counters' generation stamps.
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
                            let empty = |c: &AtomicU64| c.fetch_and(!COUNT_MASK, Relaxed);
                            adjust(&self.calls, empty(&b.calls) & COUNT_MASK, 0);
                            adjust(&self.failures, empty(&b.failures) & COUNT_MASK, 0);
                            adjust(&self.slow, empty(&b.slow) & COUNT_MASK, 0);
                        }
                    }
                    return;
                }
                Err(actual) => head = actual,
            }
        }
    }

    /// Records one outcome of closed generation `generation` at `now`; `None` if it is
    /// not counted (older than the window, or the window is not that generation's).
    #[inline]
    pub(crate) fn record(
        &self,
        failed: bool,
        slow: bool,
        now: Nanos,
        generation: u32,
    ) -> Option<Counts> {
        let epoch = self.epoch(now);
        self.advance(epoch);
        let b = &self.buckets[(epoch % self.buckets.len() as u64) as usize];
        if b.epoch.load(Relaxed) != epoch {
            // Older than the window (a caller that read the clock long ago).
            return None;
        }
        // Bucket first, then total: a rotation racing with this either takes the
        // bucket's share with it or leaves it (and the total) for the next lap. Each
        // bucket counter is added to only while stamped `generation`; a re-stamp
        // between two of them takes what was added before it.
        // Acquire on success: pairs with the Release of the re-stamp of `calls` in
        // `clear`, which re-stamps `failures` and `slow` first (see the module docs).
        if !increment(&b.calls, generation, Acquire) {
            return None;
        }
        self.calls.fetch_add(1, Relaxed);
        if failed && increment(&b.failures, generation, Relaxed) {
            self.failures.fetch_add(1, Relaxed);
        }
        if slow && increment(&b.slow, generation, Relaxed) {
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

    /// Empties the window for `generation`: every bucket counter older than it is
    /// re-stamped empty and what it held subtracted from the totals.
    pub(crate) fn clear(&self, generation: u32) {
        for b in self.buckets.iter() {
            // `calls` last, with Release: pairs with the Acquire in `record`. The other
            // two are published by it (Relaxed).
            adjust(&self.slow, restamp(&b.slow, generation, Relaxed), 0);
            adjust(&self.failures, restamp(&b.failures, generation, Relaxed), 0);
            adjust(&self.calls, restamp(&b.calls, generation, Release), 0);
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

    /// Records an outcome of closed generation `generation` (see the module docs).
    #[inline]
    pub(crate) fn record(
        &self,
        failed: bool,
        slow: bool,
        now: Nanos,
        generation: u32,
    ) -> Option<Counts> {
        match self {
            Window::Count(w) => w.record(failed, slow, generation),
            Window::Time(w) => w.record(failed, slow, now, generation),
        }
    }

    pub(crate) fn counts(&self, now: Nanos) -> Counts {
        match self {
            Window::Count(w) => w.counts(),
            Window::Time(w) => w.counts(now),
        }
    }

    /// Empties the window for the breaker's entering `generation` (a no-op on words
    /// already stamped with it or a newer one).
    pub(crate) fn clear(&self, generation: u32) {
        match self {
            Window::Count(w) => w.clear(generation),
            Window::Time(w) => w.clear(generation),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn count_window_slides() {
        let w = CountWindow::new(3);
        assert_eq!(w.record(true, false, 0).unwrap().failures, 1);
        w.record(false, true, 0);
        let c = w.record(false, false, 0).unwrap();
        assert_eq!((c.calls, c.failures, c.slow), (3, 1, 1));
        // The first outcome (a failure) leaves.
        let c = w.record(false, false, 0);
        assert_eq!(c, None, "a success into a full window skips the check");
        assert_eq!(
            w.counts(),
            Counts {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
        w.record(true, true, 0);
        assert_eq!(
            w.counts(),
            Counts {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.clear(1);
        assert_eq!(w.counts(), Counts::default());
    }

    #[test]
    fn a_success_into_a_full_healthy_window_writes_nothing() {
        let w = CountWindow::new(3);
        for _ in 0..3 {
            w.record(false, false, 0);
        }
        let pos = w.pos.load(Relaxed);
        assert_eq!(w.record(false, false, 0), None);
        assert_eq!(w.pos.load(Relaxed), pos, "not written");
        // A failure still leaves after exactly 3 more outcomes.
        w.record(true, false, 0);
        w.record(false, false, 0);
        w.record(false, false, 0);
        assert_eq!(w.counts().failures, 1);
        w.record(false, false, 0);
        assert_eq!(w.counts().failures, 0);
        assert_eq!(w.counts().calls, 3);
    }

    #[test]
    fn count_window_spans_ring_words() {
        let w = CountWindow::new(70);
        for i in 0..200u64 {
            w.record(i % 3 == 0, i % 5 == 0, 0);
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
    fn a_clear_turns_away_the_generations_before_it() {
        let w = CountWindow::new(2);
        w.record(true, false, 0);
        w.clear(1);
        assert_eq!(w.record(true, false, 0), None, "generation 0 is over");
        assert_eq!(w.counts(), Counts::default());
        let c = w.record(false, false, 1).unwrap();
        assert_eq!((c.calls, c.failures), (1, 0));
        // A late clear of an older generation leaves the newer window alone.
        w.clear(0);
        assert_eq!(w.counts().calls, 1);
        assert_eq!(w.record(true, false, 0), None);
        assert_eq!(w.record(true, false, 1).unwrap().failures, 1);

        let t = TimeWindow::new(Nanos::from_secs(1), 2);
        let at = Nanos::from_millis(10);
        t.record(true, true, at, 0);
        t.clear(1);
        assert_eq!(t.record(true, true, at, 0), None, "generation 0 is over");
        assert_eq!(t.counts(at), Counts::default());
        assert_eq!(t.record(true, false, at, 1).unwrap().failures, 1);
        t.clear(0);
        assert_eq!(t.counts(at).calls, 1);
        // Expiring a bucket keeps its stamp.
        let later = Nanos::from_secs(5);
        assert_eq!(t.counts(later), Counts::default());
        assert_eq!(t.record(false, true, later, 1).unwrap().slow, 1);
        assert_eq!(t.record(false, true, later, 0), None);
    }

    #[test]
    fn stamps_compare_across_the_generation_wrap() {
        let max = GEN_MASK;
        assert!(older(stamp(max), 0), "0 follows the last generation");
        assert!(!older(stamp(0), max));
        assert!(older(stamp(5), 6) && !older(stamp(6), 6) && !older(stamp(7), 6));
        let w = CountWindow::new(1);
        w.clear(max);
        w.record(true, false, max);
        w.clear(0);
        assert_eq!(w.counts(), Counts::default());
        assert_eq!(w.record(true, false, max), None);
    }

    #[test]
    fn time_window_expires_whole_buckets() {
        // 1 s in 4 buckets of 250 ms.
        let w = TimeWindow::new(Nanos::from_secs(1), 4);
        w.record(true, false, Nanos::from_millis(0), 0);
        w.record(false, false, Nanos::from_millis(260), 0);
        w.record(true, true, Nanos::from_millis(999), 0);
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
        assert_eq!(w.record(true, false, Nanos::from_millis(500), 0), None);
        assert_eq!(w.counts(Nanos::from_secs(60)), Counts::default());
    }
}
