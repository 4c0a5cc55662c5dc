//! Property tests: the retry budget against a plain reference model, and under
//! contention.

use buttress_core::Nanos;
use buttress_core::budget::{LANES, RetryBudget, refreshes_at};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    /// A deposit in a lane.
    Deposit(usize),
    /// Deposits at the cached epoch (no clock read unless one refreshes it), in a lane:
    /// this many in a row, at one time. One, mostly; sometimes a burst long enough to
    /// take a slot's count through the refresh counts of a busy lane (64, 128, 192).
    DepositCached(usize, u32),
    Withdraw,
    RefundLast,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            2 => (0u64..2_500).prop_map(Op::Advance),
            2 => lane().prop_map(Op::Deposit),
            6 => lane().prop_map(|lane| Op::DepositCached(lane, 1)),
            1 => (lane(), 60u32..=200).prop_map(|(lane, n)| Op::DepositCached(lane, n)),
            4 => Just(Op::Withdraw),
            1 => Just(Op::RefundLast),
        ],
        1..300,
    )
}

/// Mostly lanes 0 and 1, sometimes one past the last (which is lane 1 again).
fn lane() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(0usize), 3 => Just(1usize), 1 => Just(LANES + 1)]
}

/// The budget as plainly as it can be said: lists of epochs, counted when younger than
/// `slots` epochs.
struct Model {
    slot_ms: u64,
    slots: u64,
    ratio_ppm: u128,
    reserve: u128,
    /// How many deposits were credited to each (lane, epoch): the list of every
    /// deposit's (lane, epoch), counted (bursts make it too long to scan per deposit).
    deposits: BTreeMap<(usize, u64), usize>,
    withdrawals: Vec<u64>,
    /// The latest epoch of any time the budget was given.
    cached: u64,
}

impl Model {
    fn in_window(&self, at: u64, now_ms: u64) -> bool {
        let e = now_ms / self.slot_ms;
        at <= e && e - at < self.slots
    }
    fn deposited(&self, now_ms: u64) -> usize {
        self.deposits
            .iter()
            .filter(|&(&(_, at), _)| self.in_window(at, now_ms))
            .map(|(_, &n)| n)
            .sum()
    }
    fn allowance(&self, now_ms: u64) -> u64 {
        let d = self.deposited(now_ms) as u128;
        ((self.reserve * 1_000_000 + self.ratio_ppm * d) / 1_000_000) as u64
    }
    /// A deposit at epoch `e` in `lane`: counted in the latest epoch its slot of that
    /// lane holds if that is later than `e` (a slot is only restarted for a later
    /// epoch). Returns the epoch credited and how many deposits that slot now holds.
    fn credit(&mut self, lane: usize, e: u64) -> (u64, usize) {
        let (at, held) = self.peek(lane, e);
        *self.deposits.entry((lane % LANES, at)).or_default() += 1;
        (at, held)
    }
    /// What [`credit`](Self::credit) would return, without depositing.
    fn peek(&self, lane: usize, e: u64) -> (u64, usize) {
        let lane = lane % LANES;
        let at = self
            .deposits
            .keys()
            .copied()
            .filter(|&(l, a)| l == lane && a % self.slots == e % self.slots && a > e)
            .map(|(_, a)| a)
            .max()
            .unwrap_or(e);
        let held = self.deposits.get(&(lane, at)).copied().unwrap_or(0);
        (at, held + 1)
    }
    fn used(&self, now_ms: u64) -> u64 {
        self.withdrawals
            .iter()
            .filter(|&&at| self.in_window(at, now_ms))
            .count() as u64
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_the_reference_model(
        ops in ops(),
        ratio_pct in 0u32..150,
        floor in 0u32..4,
        slots in 1u32..12,
        slot_ms in 100u64..1_500,
    ) {
        let ttl = Duration::from_millis(slot_ms * u64::from(slots));
        let budget = RetryBudget::builder()
            .retry_ratio(f64::from(ratio_pct) / 100.0)
            .min_retries_per_sec(floor)
            .ttl(ttl)
            .slots(slots)
            .build()
            .unwrap();
        let mut model = Model {
            slot_ms,
            slots: u64::from(slots),
            ratio_ppm: u128::from(ratio_pct) * 10_000,
            reserve: u128::from(floor) * ttl.as_millis() / 1000,
            deposits: BTreeMap::new(),
            withdrawals: vec![],
            cached: 0,
        };
        prop_assert_eq!(budget.reserve() as u128, model.reserve);
        let mut now_ms = 0u64;
        let mut last = None;
        for op in ops {
            let now = Nanos::from_millis(now_ms);
            let epoch = now_ms / slot_ms;
            match op {
                Op::Advance(ms) => now_ms += ms,
                Op::Deposit(lane) => {
                    budget.deposit_in(lane, now);
                    model.cached = model.cached.max(epoch);
                    model.credit(lane, epoch);
                }
                Op::DepositCached(lane, n) => {
                    for _ in 0..n {
                        let mut read = false;
                        budget.deposit_cached_in(lane, || {
                            read = true;
                            now
                        });
                        // At a refresh count of the cached epoch's slot, the clock is
                        // read first and the deposit goes to the epoch read.
                        let (_, count) = model.peek(lane, model.cached);
                        let refresh = refreshes_at(u32::try_from(count).unwrap_or(u32::MAX));
                        prop_assert_eq!(
                            read,
                            refresh,
                            "the clock is read at the refresh counts only (count {})",
                            count
                        );
                        if refresh {
                            model.cached = model.cached.max(epoch);
                        }
                        let cached = model.cached;
                        model.credit(lane, cached);
                    }
                }
                Op::Withdraw => {
                    model.cached = model.cached.max(epoch);
                    let expect = model.used(now_ms) < model.allowance(now_ms);
                    let got = budget.try_withdraw(now);
                    prop_assert_eq!(got.is_some(), expect);
                    if let Some(w) = got {
                        // Granted only while the model's retries in the window were
                        // under ratio * requests + the floor (checked just above).
                        model.withdrawals.push(epoch);
                        last = Some((w, epoch));
                    }
                }
                Op::RefundLast => {
                    if let Some((w, at)) = last.take() {
                        budget.refund(w);
                        let i = model.withdrawals.iter().rposition(|&e| e == at).unwrap();
                        model.withdrawals.remove(i);
                    }
                }
            }
            let now = Nanos::from_millis(now_ms);
            prop_assert_eq!(budget.deposited(now) as usize, model.deposited(now_ms));
            prop_assert_eq!(
                budget.available(now),
                model.allowance(now_ms).saturating_sub(model.used(now_ms))
            );
        }
    }

    #[test]
    fn never_overdrawn_by_several_threads(
        threads in 2usize..5,
        deposits_per_thread in 0u32..50,
        withdrawals_per_thread in 1u32..60,
        ratio_pct in 0u32..100,
        floor in 0u32..3,
    ) {
        let budget = std::sync::Arc::new(
            RetryBudget::builder()
                .retry_ratio(f64::from(ratio_pct) / 100.0)
                .min_retries_per_sec(floor)
                .build()
                .unwrap(),
        );
        let now = Nanos::from_secs(3);
        let granted: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let b = budget.clone();
                    s.spawn(move || {
                        let mut got = 0u64;
                        for i in 0..deposits_per_thread.max(withdrawals_per_thread) {
                            if i < deposits_per_thread {
                                // Threads in lanes of their own, two of them sharing
                                // lane 0, as the retry layer's threads may.
                                let lane = t.saturating_sub(1);
                                if i % 2 == 0 {
                                    b.deposit_in(lane, now);
                                } else {
                                    b.deposit_cached_in(lane, || now);
                                }
                            }
                            if i < withdrawals_per_thread && b.try_withdraw(now).is_some() {
                                got += 1;
                            }
                        }
                        got
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        let requests = threads as u64 * u64::from(deposits_per_thread);
        let bound = (u64::from(ratio_pct) * requests) / 100 + budget.reserve();
        prop_assert!(granted <= bound, "granted {} bound {}", granted, bound);
        prop_assert_eq!(budget.available(now), bound - granted);
    }
}
