//! The retry budget: retries as a ratio of recent requests, plus a small floor.
//!
//! In the manner of Finagle's `RetryBudget` and Envoy's retry budgets: every request
//! **deposits**, every retry **withdraws**, and deposits **age out** after `ttl`. A retry
//! is allowed while
//!
//! ```text
//! retries in the last ttl + 1  <=  ratio * requests in the last ttl  +  min_retries_per_sec * ttl
//! ```
//!
//! so that during an outage retries add at most `ratio` to the load (20% by default)
//! instead of multiplying it by `max_attempts`, while a quiet client still gets the floor
//! (10 retries per second by default, i.e. a reserve of 100 over the default 10 s `ttl`).
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `ttl` | 10 s | how long a deposit (and a withdrawal) counts |
//! | `retry_ratio` | 0.2 | retries allowed per request seen in the last `ttl` |
//! | `min_retries_per_sec` | 10 | the floor: a reserve of `min_retries_per_sec * ttl` retries |
//! | `slots` | 10 | the `ttl` is kept as this many time slots (1 s each by default, at least [`MIN_SLOT_WIDTH`], 100 ms, each) |
//!
//! # How it is kept
//!
//! Time is cut into slots of `ttl / slots`; slot `e` (the epoch, `now / slot_width`) is
//! counted in ring position `e % slots`. Each ring position is one `AtomicU64` stamped
//! with the epoch it counts, so a position reused for a new epoch is recognised as stale
//! and restarted, never rescanned. The window is the last `slots` epochs.
//!
//! - A deposit is one load and one `fetch_add` on the current slot (a compare-and-swap
//!   only when the slot must be restarted for a new epoch).
//! - Deposits are spread over [`LANES`] rings, one chosen by the caller
//!   ([`deposit_in`](RetryBudget::deposit_in)): every request deposits, so with one
//!   ring every core would write the same word on every request and pass its cache
//!   line back and forth. A caller that keeps to one lane per thread (the retry layer
//!   uses the thread's handle number) writes a line no other thread writes. The lanes'
//!   current slots are 128 bytes apart, so they never share a line (nor a pair of
//!   lines, which adjacent-line prefetchers move together). Counting sums every lane;
//!   only a withdrawal counts, and a withdrawal comes with a retry, which waits.
//! - A deposit need not read the clock: [`deposit_cached`](RetryBudget::deposit_cached)
//!   deposits at the budget's *cached epoch*, the latest epoch any clock read given to
//!   the budget has shown (every withdrawal gives one), and reads the clock itself only
//!   when the count of the slot it adds to would reach a power of two below
//!   [`REFRESH_EVERY`] or a multiple of it ([`refreshes_at`]), to move the cached epoch
//!   on when nothing else does; it then deposits at the epoch it read. Busy lanes thus read the clock about once in 64
//!   requests, and quiet ones a few times per slot: a lane whose slot holds `c`
//!   requests last read the clock at most `c / 2` requests ago, so at any request rate
//!   the cached epoch trails the clock by little more than one slot (with only every
//!   64th deposit reading it, a client making 2 requests a second would credit half a
//!   minute of requests to one stale epoch, and they would age out before they were
//!   ever counted). A cached epoch is never ahead of the clock, and
//!   a deposit only ever adds to a slot stamped with the epoch it holds or with a later
//!   (still past) one, or restarts a slot stamped earlier: so a deposit is counted in
//!   an epoch no later than the one it was really made in. A stale cached epoch can
//!   only make requests age out early (under-credit them, which refuses retries
//!   sooner), never make them count for longer: the bound below still holds.
//! - A withdrawal is decided by one compare-and-swap loop on a single word, the number of
//!   withdrawals still counted (`outstanding`), against the allowance computed from the
//!   deposits: every grant is serialised through that one word, so the budget is never
//!   overdrawn whatever the contention. The grant is then recorded in the withdrawal
//!   ring so that it ages out: whoever restarts an expired slot subtracts its count
//!   from `outstanding`, exactly once. Zeroing a slot and subtracting from
//!   `outstanding` are two steps: a withdrawal that races between them is refused for
//!   that instant (the budget errs towards refusing, never towards overdrawing).
//! - A withdrawal that was granted but not used (the retry was cancelled while it
//!   waited) can be [refunded](RetryBudget::refund).
//!
//! Everything is allocated when the budget is built; nothing is allocated afterwards.
//!
//! ```
//! use buttress_core::budget::RetryBudget;
//! use buttress_core::Nanos;
//! use std::time::Duration;
//!
//! let budget = RetryBudget::builder()
//!     .retry_ratio(0.5)
//!     .min_retries_per_sec(0)
//!     .ttl(Duration::from_secs(10))
//!     .build()?;
//! let now = Nanos::from_secs(1);
//! for _ in 0..4 {
//!     budget.deposit(now);
//! }
//! assert!(budget.try_withdraw(now).is_some());
//! assert!(budget.try_withdraw(now).is_some());
//! assert!(budget.try_withdraw(now).is_none(), "4 requests * 0.5 = 2 retries");
//! // Ten seconds later the deposits and the withdrawals have aged out.
//! assert!(budget.try_withdraw(Nanos::from_secs(12)).is_none());
//! budget.deposit(Nanos::from_secs(12));
//! budget.deposit(Nanos::from_secs(12));
//! assert!(budget.try_withdraw(Nanos::from_secs(12)).is_some());
//! # Ok::<(), buttress_core::ConfigError>(())
//! ```

use crate::clock::Nanos;
use crate::config::ConfigError;
use crate::fastmod::FastMod;
use crate::sync::{AtomicU64, Ordering, Padded};
use std::fmt;
use std::time::Duration;

// Slot word bit layout (both rings):
//
//   63            32 31             0
//  +----------------+----------------+
//  | epoch (low 32) | count (u32)    |
//  +----------------+----------------+
//
// `epoch` is the slot's epoch (`now / slot_width`) truncated to 32 bits; ages are
// compared with wrapping arithmetic, which is exact as long as a slot is not left
// untouched for 2^31 slot widths (68 years at the default 1 s slots). `count` saturates
// at u32::MAX: the fast-path `fetch_add` is only used while the count is below
// `FAST_ADD_LIMIT`, so concurrent increments cannot carry into the epoch.
const COUNT_MASK: u64 = 0xFFFF_FFFF;
const FAST_ADD_LIMIT: u64 = (u32::MAX / 2) as u64;

/// How many deposit rings a budget keeps (see the [module docs](self)); a lane number
/// is taken modulo this.
pub const LANES: usize = 16;

/// Words from one lane's ring to the next: the slots rounded up to 16 words (128
/// bytes), so that the same slot of two lanes is always 128 bytes apart.
const fn lane_stride(slots: usize) -> usize {
    slots.div_ceil(16) * 16
}

#[inline]
const fn pack(epoch: u32, count: u32) -> u64 {
    ((epoch as u64) << 32) | count as u64
}

#[inline]
const fn epoch_of(word: u64) -> u32 {
    (word >> 32) as u32
}

#[inline]
const fn count_of(word: u64) -> u32 {
    (word & COUNT_MASK) as u32
}

/// How many epochs ago `word` was stamped, seen from `epoch`: negative if the word is
/// newer than `epoch` (a thread that read the clock a little earlier than another).
#[inline]
const fn age(epoch: u32, word: u64) -> i32 {
    epoch.wrapping_sub(epoch_of(word)) as i32
}

/// The narrowest slot a budget accepts (`ttl / slots`).
///
/// Slots carry the low 32 bits of their epoch, compared as they wrap, so a ring
/// position left untouched for 2^31 epochs would read as newer than the clock: at
/// 100 ms an epoch, that takes 6.8 years; at 1 ms it would take 25 days, after which
/// withdrawals could stop ageing out and the budget refuse every retry. (Finagle, whose
/// budget this follows, takes a `ttl` of at least a second.)
pub const MIN_SLOT_WIDTH: Nanos = Nanos::from_millis(100);

/// Parts per million: the fixed-point unit of the ratio.
const PPM: u128 = 1_000_000;

/// The largest accepted `retry_ratio` (a retry per request is 1.0; Finagle allows up to
/// 1000).
pub const MAX_RATIO: f64 = 1000.0;

/// A granted withdrawal: which slot it was counted in, so that it can be
/// [refunded](RetryBudget::refund) if the retry is never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a withdrawal is either used (dropped) or refunded"]
pub struct Withdrawal {
    epoch: u32,
    index: u32,
}

/// A lock-free retry budget. See the [module docs](self).
pub struct RetryBudget {
    slot_width: u64,
    ratio_ppm: u64,
    /// `min_retries_per_sec * ttl`, in whole retries.
    reserve: u64,
    ttl: Duration,
    min_retries_per_sec: u32,
    /// [`LANES`] rings of `slots` words (as many as `withdrawals`), `stride` words
    /// apart.
    deposits: Box<[AtomicU64]>,
    stride: usize,
    /// `epoch % slots`, without a division on every deposit.
    slot_of: FastMod,
    withdrawals: Box<[AtomicU64]>,
    /// Withdrawals granted and not yet aged out or refunded. Every grant is a
    /// compare-and-swap on this one word.
    outstanding: AtomicU64,
    /// The cached epoch: the latest epoch (full `now / slot_width`) of any time given to
    /// the budget. Read by every cached deposit, written only when it moves forward, so
    /// it is read-mostly; on a cache line of its own, away from `outstanding` (written
    /// by withdrawals) and from the `Arc` counts of a budget behind an `Arc`.
    cached_epoch: Padded<AtomicU64>,
}

/// A busy lane's cached deposits read the clock once per this many requests into a slot
/// (see [`refreshes_at`]).
pub const REFRESH_EVERY: u32 = 64;

/// Whether a cached deposit that brought its slot's count to `count` reads the clock
/// (to move the cached epoch on): at the powers of two below [`REFRESH_EVERY`] and at
/// every multiple of it. So a slot's clock reads follow its count: at most `c / 2`
/// requests since the last read when it holds `c`, and never more than
/// `REFRESH_EVERY - 1` in a row.
#[inline]
pub const fn refreshes_at(count: u32) -> bool {
    count % REFRESH_EVERY == 0 || (count < REFRESH_EVERY && count.is_power_of_two())
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ttl", &self.ttl)
            .field("retry_ratio", &(self.ratio_ppm as f64 / PPM as f64))
            .field("min_retries_per_sec", &self.min_retries_per_sec)
            .field("slots", &self.withdrawals.len())
            .field("outstanding", &self.outstanding.load(Ordering::Relaxed))
            .finish()
    }
}

/// Configures a [`RetryBudget`]; [`build`](Self::build) validates it.
#[derive(Debug, Clone, Copy)]
pub struct RetryBudgetBuilder {
    ttl: Duration,
    min_retries_per_sec: u32,
    retry_ratio: f64,
    slots: u32,
}

impl Default for RetryBudgetBuilder {
    fn default() -> Self {
        RetryBudgetBuilder {
            ttl: Duration::from_secs(10),
            min_retries_per_sec: 10,
            retry_ratio: 0.2,
            slots: 10,
        }
    }
}

impl RetryBudgetBuilder {
    /// How long a request's deposit counts (default 10 s). At least one nanosecond per
    /// slot, at most a day.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The floor: this many retries per second are allowed even with no requests
    /// (default 10; `0` for none).
    pub fn min_retries_per_sec(mut self, n: u32) -> Self {
        self.min_retries_per_sec = n;
        self
    }

    /// Retries allowed per request seen in the last `ttl` (default 0.2, i.e. 20%);
    /// finite, in `0.0..=1000.0`.
    pub fn retry_ratio(mut self, ratio: f64) -> Self {
        self.retry_ratio = ratio;
        self
    }

    /// How many time slots the `ttl` is kept in (default 10), in `1..=256`, each at
    /// least [`MIN_SLOT_WIDTH`] (100 ms) wide. More slots age deposits out more
    /// smoothly; each slot is two atomic words.
    pub fn slots(mut self, slots: u32) -> Self {
        self.slots = slots;
        self
    }

    /// The budget, or the first refused field.
    pub fn build(self) -> Result<RetryBudget, ConfigError> {
        if !self.retry_ratio.is_finite() || !(0.0..=MAX_RATIO).contains(&self.retry_ratio) {
            return Err(ConfigError::new(
                "retry_ratio",
                format!("must be in 0.0..=1000.0, got {}", self.retry_ratio),
            ));
        }
        if !(1..=256).contains(&self.slots) {
            return Err(ConfigError::new(
                "slots",
                format!("must be in 1..=256, got {}", self.slots),
            ));
        }
        let ttl_nanos = Nanos::from_duration(self.ttl).as_u64();
        if ttl_nanos / u64::from(self.slots) < MIN_SLOT_WIDTH.as_u64()
            || self.ttl > Duration::from_secs(86_400)
        {
            return Err(ConfigError::new(
                "ttl",
                format!(
                    "must be at least 100ms per slot and at most a day, got {:?} over {} slots",
                    self.ttl, self.slots
                ),
            ));
        }
        let reserve =
            u128::from(self.min_retries_per_sec) * u128::from(ttl_nanos) / 1_000_000_000u128;
        let slots = self.slots as usize;
        Ok(RetryBudget {
            slot_width: ttl_nanos / u64::from(self.slots),
            ratio_ppm: (self.retry_ratio * PPM as f64).round() as u64,
            reserve: u64::try_from(reserve).unwrap_or(u64::MAX),
            ttl: self.ttl,
            min_retries_per_sec: self.min_retries_per_sec,
            deposits: (0..LANES * lane_stride(slots))
                .map(|_| AtomicU64::new(0))
                .collect(),
            stride: lane_stride(slots),
            slot_of: FastMod::new(self.slots),
            withdrawals: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            outstanding: AtomicU64::new(0),
            cached_epoch: Padded(AtomicU64::new(0)),
        })
    }
}

// Orderings. Every word here is a counter that publishes no other memory: a grant is
// decided by read-modify-writes on the single `outstanding` word, and read-modify-writes
// of one atomic are totally ordered (its modification order) whatever the ordering, so
// two grants can never both see the same `outstanding` value. The deposit counts read
// for the allowance may be a moment stale; that only means the allowance reflects the
// requests seen a moment ago. The cached epoch is a hint, not a lock: a stale read of it
// only credits a deposit to an earlier epoch (see the module docs), and it only moves
// forward (`fetch_max`). Relaxed therefore suffices everywhere.
const RELAXED: Ordering = Ordering::Relaxed;

impl RetryBudget {
    /// A builder with the defaults: 20% of the requests in the last 10 s, plus 10
    /// retries per second, in 10 slots.
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder::default()
    }

    /// How long deposits count.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The floor, in retries allowed over one `ttl` with no requests at all.
    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    #[inline]
    fn epoch(&self, now: Nanos) -> u64 {
        // `slot_width` is at least 1 (checked at build).
        now.as_u64() / self.slot_width
    }

    #[inline]
    fn slots(&self) -> u64 {
        self.withdrawals.len() as u64
    }

    /// Records one request made at `now` (and moves the cached epoch on to `now`'s), in
    /// lane 0.
    #[inline]
    pub fn deposit(&self, now: Nanos) {
        self.deposit_in(0, now);
    }

    /// Records one request made at `now` in lane `lane` (modulo [`LANES`]).
    #[inline]
    pub fn deposit_in(&self, lane: usize, now: Nanos) {
        let e = self.epoch(now);
        self.observe(e);
        self.deposit_at(lane, e);
    }

    /// Records one request made now, at the cached epoch, without a clock read, in
    /// lane 0: see [`deposit_cached_in`](Self::deposit_cached_in).
    #[inline]
    pub fn deposit_cached(&self, now: impl FnOnce() -> Nanos) {
        self.deposit_cached_in(0, now);
    }

    /// Records one request made now, at the cached epoch, without a clock read, in
    /// lane `lane` (modulo [`LANES`]): `now` is called only when the slot's count
    /// reaches a count where [`refreshes_at`] says so (about once in
    /// [`REFRESH_EVERY`] requests on a busy lane), to move the cached epoch on. A stale
    /// cached epoch under-credits requests (they age out early), never over-credits
    /// them: see the [module docs](self).
    #[inline]
    pub fn deposit_cached_in(&self, lane: usize, now: impl FnOnce() -> Nanos) {
        let e = self.cached_epoch.0.load(RELAXED);
        let e32 = e as u32;
        let slot = self.deposit_slot(lane, e);
        let cur = slot.load(RELAXED);
        let count = u64::from(count_of(cur));
        // The common case: the slot counts this epoch, holds at least `REFRESH_EVERY`
        // (below that, powers of two are refresh counts too: see `refreshes_at`), and
        // this deposit does not bring it to a multiple of it: one add (see
        // `deposit_into` for a restart racing it). One compare checks the range.
        let busy = count.wrapping_sub(u64::from(REFRESH_EVERY))
            < FAST_ADD_LIMIT - u64::from(REFRESH_EVERY);
        if epoch_of(cur) == e32 && busy && (count + 1) % u64::from(REFRESH_EVERY) != 0 {
            slot.fetch_add(1, RELAXED);
            return;
        }
        self.deposit_cached_slow(lane, slot, e32, cur, now);
    }

    /// A cached deposit off the common path: at a refresh count, or into a slot that
    /// holds another epoch.
    #[cold]
    #[inline(never)]
    fn deposit_cached_slow(
        &self,
        lane: usize,
        slot: &AtomicU64,
        e32: u32,
        cur: u64,
        now: impl FnOnce() -> Nanos,
    ) {
        // The count this deposit would bring its slot to (the slot's own if it holds
        // this epoch or a later one, else a restart): at a refresh count, the clock is
        // read *before* depositing, so that the deposit that finds the cached epoch
        // stale is itself credited to the right one. (A race can make the guess one
        // off; that only moves a refresh by a deposit.)
        let next = if age(e32, cur) <= 0 {
            count_of(cur).saturating_add(1)
        } else {
            1
        };
        if refreshes_at(next) {
            self.deposit_in(lane, now());
        } else {
            self.deposit_into(slot, e32, cur);
        }
    }

    /// Moves the cached epoch forward to `e` if it is behind. A load first, so that a
    /// clock read that shows nothing new does not write the shared line.
    #[inline]
    fn observe(&self, e: u64) {
        if self.cached_epoch.0.load(RELAXED) < e {
            self.cached_epoch.0.fetch_max(e, RELAXED);
        }
    }

    /// The deposit slot of epoch `e` in `lane`.
    #[inline]
    fn deposit_slot(&self, lane: usize, e: u64) -> &AtomicU64 {
        &self.deposits[lane % LANES * self.stride + self.slot_of.rem(e) as usize]
    }

    /// Adds one request to the slot of epoch `e` in `lane`.
    #[inline]
    fn deposit_at(&self, lane: usize, e: u64) {
        let slot = self.deposit_slot(lane, e);
        self.deposit_into(slot, e as u32, slot.load(RELAXED));
    }

    /// Adds one request to `slot`, the slot of epoch `e32`, of which `cur` was read last.
    ///
    /// Stamps only move forward: a slot is restarted only for an epoch later than the
    /// one it holds. If the slot holds `e` or a later epoch the request is added to
    /// whatever it holds when the add lands; every stamp came from a clock read made
    /// before that add, so the request is counted in an epoch no later than its own.
    #[inline]
    fn deposit_into(&self, slot: &AtomicU64, e32: u32, cur: u64) {
        if epoch_of(cur) == e32 && u64::from(count_of(cur)) < FAST_ADD_LIMIT {
            // The slot already counts this epoch: one add. (Should the slot be
            // restarted for a later epoch between the load and this add, the request
            // counts in that epoch, no later than now: see above.)
            slot.fetch_add(1, RELAXED);
            return;
        }
        // A closure that always returns `Some`: the update cannot fail.
        let _ = slot.fetch_update(RELAXED, RELAXED, |w| {
            Some(if age(e32, w) <= 0 {
                // Ours, or newer than our epoch: add to it.
                pack(epoch_of(w), count_of(w).saturating_add(1))
            } else {
                // Stale: restart it for our epoch.
                pack(e32, 1)
            })
        });
    }

    /// Requests counted in the window ending at `now`.
    pub fn deposited(&self, now: Nanos) -> u64 {
        let e32 = self.epoch(now) as u32;
        let n = self.slots() as i32;
        self.deposits
            .chunks(self.stride)
            .flat_map(|lane| &lane[..self.withdrawals.len()])
            .map(|s| {
                let w = s.load(RELAXED);
                let a = age(e32, w);
                if (0..n).contains(&a) {
                    u64::from(count_of(w))
                } else {
                    0
                }
            })
            .sum()
    }

    /// How many retries the window ending at `now` allows in all (before subtracting
    /// those already made).
    pub fn allowance(&self, now: Nanos) -> u64 {
        let a = (u128::from(self.reserve) * PPM
            + u128::from(self.ratio_ppm) * u128::from(self.deposited(now)))
            / PPM;
        u64::try_from(a).unwrap_or(u64::MAX)
    }

    /// Retries still allowed at `now` (read-only; for metrics and tests).
    pub fn available(&self, now: Nanos) -> u64 {
        let e32 = self.epoch(now) as u32;
        let n = self.slots() as i32;
        let expired: u64 = self
            .withdrawals
            .iter()
            .map(|s| {
                let w = s.load(RELAXED);
                if age(e32, w) >= n {
                    u64::from(count_of(w))
                } else {
                    0
                }
            })
            .sum();
        let used = self.outstanding.load(RELAXED).saturating_sub(expired);
        self.allowance(now).saturating_sub(used)
    }

    /// Subtracts the counts of withdrawal slots that have aged out from `outstanding`.
    fn expire(&self, e32: u32) {
        let n = self.slots() as i32;
        for slot in self.withdrawals.iter() {
            let w = slot.load(RELAXED);
            if count_of(w) == 0 || age(e32, w) < n {
                continue;
            }
            // Zero the count, keeping the stamp; only the thread whose swap succeeds
            // subtracts, so each count leaves `outstanding` exactly once.
            if slot
                .compare_exchange(w, pack(epoch_of(w), 0), RELAXED, RELAXED)
                .is_ok()
            {
                self.outstanding.fetch_sub(u64::from(count_of(w)), RELAXED);
            }
        }
    }

    /// Takes one retry from the budget at `now`, or `None` if that would overdraw it.
    pub fn try_withdraw(&self, now: Nanos) -> Option<Withdrawal> {
        let e = self.epoch(now);
        let e32 = e as u32;
        self.observe(e);
        self.expire(e32);
        let allowance = self.allowance(now);
        // The grant: one compare-and-swap loop on `outstanding`.
        let mut used = self.outstanding.load(RELAXED);
        loop {
            if used >= allowance {
                return None;
            }
            match self
                .outstanding
                .compare_exchange_weak(used, used + 1, RELAXED, RELAXED)
            {
                Ok(_) => break,
                Err(actual) => used = actual,
            }
        }
        // Record it where it will age out. Until this is done `outstanding` counts one
        // more than the ring: conservative, it refuses rather than overdraws.
        let index = self.slot_of.rem(e) as usize;
        let slot = &self.withdrawals[index];
        let mut counted_in = e32;
        let prev = slot.fetch_update(RELAXED, RELAXED, |w| {
            Some(if age(e32, w) <= 0 {
                counted_in = epoch_of(w);
                pack(epoch_of(w), count_of(w).saturating_add(1))
            } else {
                counted_in = e32;
                pack(e32, 1)
            })
        });
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let prev = prev.unwrap_or_else(|w| w);
        if age(e32, prev) > 0 && count_of(prev) > 0 {
            // We restarted a stale slot that `expire` had not zeroed yet: its count
            // leaves `outstanding` here, exactly once.
            self.outstanding
                .fetch_sub(u64::from(count_of(prev)), RELAXED);
        }
        Some(Withdrawal {
            epoch: counted_in,
            index: index as u32,
        })
    }

    /// A withdrawal about to be spent at `now`: kept if it still counts then, else (its
    /// retry waited longer than the `ttl`, a long pushback) replaced by a withdrawal at
    /// `now`, if the budget allows one. So every retry is counted in the windows around
    /// the moment it is *sent*: a wait longer than the `ttl` cannot carry a retry past
    /// the budget of the window it lands in.
    pub fn renew(&self, w: Withdrawal, now: Nanos) -> Option<Withdrawal> {
        // A withdrawal counts for the `slots` epochs from its own (see `try_withdraw`);
        // one that has aged out has already left `outstanding`: nothing to give back.
        if age(self.epoch(now) as u32, pack(w.epoch, 0)) < self.slots() as i32 {
            Some(w)
        } else {
            self.try_withdraw(now)
        }
    }

    /// Gives back a withdrawal whose retry was never sent. If it has already aged out
    /// there is nothing left to give back and nothing happens (nor for a withdrawal
    /// of another budget with fewer slots).
    pub fn refund(&self, w: Withdrawal) {
        let Some(slot) = self.withdrawals.get(w.index as usize) else {
            return;
        };
        let refunded = slot
            .fetch_update(RELAXED, RELAXED, |s| {
                (epoch_of(s) == w.epoch && count_of(s) > 0)
                    .then(|| pack(epoch_of(s), count_of(s) - 1))
            })
            .is_ok();
        if refunded {
            self.outstanding.fetch_sub(1, RELAXED);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn budget(ratio: f64, floor: u32) -> RetryBudget {
        RetryBudget::builder()
            .retry_ratio(ratio)
            .min_retries_per_sec(floor)
            .ttl(Duration::from_secs(10))
            .slots(10)
            .build()
            .unwrap()
    }

    #[test]
    fn defaults_are_documented_numbers() {
        let b = RetryBudget::builder().build().unwrap();
        assert_eq!(b.ttl(), Duration::from_secs(10));
        assert_eq!(b.reserve(), 100);
        for _ in 0..100 {
            b.deposit(Nanos::ZERO);
        }
        assert_eq!(b.allowance(Nanos::ZERO), 120);
    }

    #[test]
    fn refuses_bad_config() {
        let field = |b: RetryBudgetBuilder| b.build().unwrap_err().field();
        assert_eq!(
            field(RetryBudget::builder().retry_ratio(f64::NAN)),
            "retry_ratio"
        );
        assert_eq!(
            field(RetryBudget::builder().retry_ratio(-0.1)),
            "retry_ratio"
        );
        assert_eq!(
            field(RetryBudget::builder().retry_ratio(1e9)),
            "retry_ratio"
        );
        assert_eq!(field(RetryBudget::builder().slots(0)), "slots");
        assert_eq!(field(RetryBudget::builder().ttl(Duration::ZERO)), "ttl");
        // Slots narrower than 100 ms are refused; 100 ms is accepted.
        let narrow = RetryBudget::builder()
            .ttl(Duration::from_secs(1))
            .slots(11)
            .build()
            .unwrap_err();
        assert_eq!(narrow.field(), "ttl");
        assert!(narrow.to_string().contains("100ms per slot"), "{narrow}");
        assert!(
            RetryBudget::builder()
                .ttl(Duration::from_secs(1))
                .slots(10)
                .build()
                .is_ok()
        );
        assert_eq!(field(RetryBudget::builder().ttl(Duration::MAX)), "ttl");
    }

    #[test]
    fn floor_alone_allows_reserve() {
        let b = budget(0.0, 2);
        let now = Nanos::from_secs(5);
        let granted = (0..50).filter(|_| b.try_withdraw(now).is_some()).count();
        assert_eq!(granted, 20, "2/s over 10 s");
        assert_eq!(b.available(now), 0);
    }

    #[test]
    fn deposits_and_withdrawals_age_out() {
        let b = budget(0.5, 0);
        for _ in 0..10 {
            b.deposit(Nanos::from_secs(0));
        }
        let granted = (0..10)
            .filter(|_| b.try_withdraw(Nanos::from_secs(1)).is_some())
            .count();
        assert_eq!(granted, 5);
        // At 9.5 s the deposits of slot 0 still count.
        assert!(b.try_withdraw(Nanos::from_millis(9_500)).is_none());
        // At 10 s slot 0 (deposits) and later slot 1 (withdrawals) leave the window.
        assert_eq!(b.deposited(Nanos::from_secs(10)), 0);
        b.deposit(Nanos::from_secs(10));
        b.deposit(Nanos::from_secs(10));
        assert!(
            b.try_withdraw(Nanos::from_secs(10)).is_none(),
            "withdrawals of 1 s still count"
        );
        assert!(b.try_withdraw(Nanos::from_secs(11)).is_some());
    }

    #[test]
    fn a_withdrawal_of_another_budget_is_not_an_index_out_of_range() {
        let wide = RetryBudget::builder().build().unwrap();
        let narrow = RetryBudget::builder()
            .ttl(Duration::from_secs(1))
            .slots(1)
            .build()
            .unwrap();
        let w = wide.try_withdraw(Nanos::from_secs(9)).unwrap();
        let before = narrow.available(Nanos::from_secs(9));
        narrow.refund(w);
        assert_eq!(narrow.available(Nanos::from_secs(9)), before);
    }

    #[test]
    fn refund_gives_back_once() {
        let b = budget(0.0, 1);
        let now = Nanos::from_secs(1);
        let ws: Vec<_> = (0..10).map(|_| b.try_withdraw(now).unwrap()).collect();
        assert!(b.try_withdraw(now).is_none());
        b.refund(ws[0]);
        assert_eq!(b.available(now), 1);
        assert!(b.try_withdraw(now).is_some());
        // A refund after the withdrawal aged out gives nothing back twice.
        let late = Nanos::from_secs(30);
        assert!(b.try_withdraw(late).is_some());
        b.refund(ws[1]);
        assert_eq!(b.available(late), 9);
    }

    #[test]
    fn stale_clock_reads_do_not_corrupt() {
        let b = budget(1.0, 0);
        b.deposit(Nanos::from_secs(3));
        // A thread whose clock read is a slot older.
        b.deposit(Nanos::from_secs(2));
        assert_eq!(b.deposited(Nanos::from_secs(3)), 2);
        assert!(b.try_withdraw(Nanos::from_secs(3)).is_some());
        // Seen from 2 s, the deposit of 3 s is not counted yet: refuse, never overdraw.
        assert!(b.try_withdraw(Nanos::from_secs(2)).is_none());
        assert!(b.try_withdraw(Nanos::from_secs(3)).is_some());
        assert!(b.try_withdraw(Nanos::from_secs(3)).is_none());
    }

    #[test]
    fn a_withdrawal_is_renewed_only_once_it_has_aged_out() {
        // One retry per request, no floor.
        let b = budget(1.0, 0);
        b.deposit(Nanos::ZERO);
        let w = b.try_withdraw(Nanos::ZERO).unwrap();
        // Still counted 9 s later: kept, and nothing more is granted.
        let w = b.renew(w, Nanos::from_secs(9)).unwrap();
        assert_eq!(b.available(Nanos::from_secs(9)), 0);
        // At 15 s it has aged out (and so has its request): with a new request in the
        // window, it is replaced by a withdrawal at 15 s ...
        b.deposit(Nanos::from_secs(15));
        let w = b.renew(w, Nanos::from_secs(15)).unwrap();
        assert_eq!(b.available(Nanos::from_secs(15)), 0);
        // ... and with none left to spend, a late retry is refused.
        assert!(b.renew(w, Nanos::from_secs(26)).is_none());
    }

    #[test]
    fn the_refresh_counts() {
        let at: Vec<u32> = (1..=300).filter(|&c| refreshes_at(c)).collect();
        assert_eq!(at, [1, 2, 4, 8, 16, 32, 64, 128, 192, 256]);
        assert!(refreshes_at(u32::MAX - u32::MAX % REFRESH_EVERY));
    }

    #[test]
    fn cached_deposits_read_the_clock_rarely_and_never_over_credit() {
        let b = budget(1.0, 0);
        let reads = std::cell::Cell::new(0);
        // The cached epoch is 0 (the clock's origin) until a time is given.
        let at = |t: Nanos| {
            reads.set(reads.get() + 1);
            t
        };
        for _ in 0..200 {
            b.deposit_cached(|| at(Nanos::from_secs(5)));
        }
        // The first deposit, its slot's first, read the clock before depositing: all
        // 200 went to epoch 5, reading it at counts 1, 2, 4, ..., 64, 128, 192.
        assert_eq!(reads.get(), 9);
        assert_eq!(b.deposited(Nanos::from_secs(14)), 200);
        assert_eq!(b.deposited(Nanos::from_secs(15)), 0, "epoch 5 aged out");
        // A withdrawal at 20 s moves the cached epoch on: nothing is credited to the
        // stale epoch 5 after it.
        assert!(b.try_withdraw(Nanos::from_secs(20)).is_none());
        let twenty = || Nanos::from_secs(20);
        let not_now = || unreachable!("not a refresh count");
        // Counts 1, 2, 3, 4, 5 of the slot of epoch 20.
        b.deposit_cached(twenty);
        b.deposit_cached(twenty);
        b.deposit_cached(not_now);
        b.deposit_cached(twenty);
        b.deposit_cached(not_now);
        assert_eq!(b.deposited(Nanos::from_secs(20)), 5);
        assert_eq!(b.deposited(Nanos::from_secs(30)), 0);
    }

    #[test]
    fn a_quiet_client_is_credited_for_its_recent_requests() {
        // Two requests a second for a minute, all deposited without a clock read of
        // their own: the last ten seconds' twenty requests must count, so that half of
        // them can be retried.
        let b = budget(0.5, 0);
        let mut t = Nanos::ZERO;
        while t <= Nanos::from_secs(60) {
            b.deposit_cached(|| t);
            t += Nanos::from_millis(500);
        }
        let now = Nanos::from_secs(60);
        let seen = b.deposited(now);
        assert!(
            (18..=20).contains(&seen),
            "{seen} of the last 10 s's requests"
        );
        for _ in 0..seen / 2 {
            assert!(b.try_withdraw(now).is_some());
        }
        assert!(b.try_withdraw(now).is_none());
    }
}
