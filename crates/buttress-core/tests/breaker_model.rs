//! The breaker against a plain single-threaded reference model: random sequences of
//! acquire, record (success / failure / ignored, slow when the clock moved past
//! `slow_call_duration`), drop without an outcome, clock advances and manual controls
//! give the same verdicts, `retry_after`s, states and window counts at every step.
#![cfg(not(loom))]

use buttress_core::Nanos;
use buttress_core::breaker::{Breaker, BreakerConfig, Outcome, Permit, State};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Cfg {
    /// `Ok(n)`: last n calls; `Err((bucket_ms, buckets))`: time window.
    window: Result<u32, (u64, u32)>,
    minimum_calls: u32,
    fail_pct: u64,
    slow: Option<(u64, u64)>,
    wait_ms: u64,
    mult: u64,
    cap_ms: u64,
    permitted: u32,
    max_half_ms: Option<u64>,
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record(usize, Outcome),
    Drop(usize),
    Advance(u64),
    ForceOpen,
    Disable,
    Reset,
}

fn cfg() -> impl Strategy<Value = Cfg> {
    (
        prop_oneof![
            (1u32..=8).prop_map(Ok),
            ((1u64..=40), (1u32..=4)).prop_map(Err)
        ],
        1u32..=8,
        // A threshold of 0 is refused by the builder; 1 % is the lowest one here.
        prop::sample::select(vec![1u64, 25, 34, 50, 60, 100]),
        prop::option::of(((1u64..=30), prop::sample::select(vec![1u64, 50, 100]))),
        0u64..=50,
        1u64..=3,
        0u64..=150,
        1u32..=3,
        prop::option::of(10u64..=100),
    )
        .prop_map(
            |(window, min, fail_pct, slow, wait_ms, mult, extra, permitted, max_half_ms)| Cfg {
                minimum_calls: match window {
                    Ok(n) => min.min(n),
                    Err(_) => min,
                },
                window,
                fail_pct,
                slow,
                wait_ms,
                mult,
                cap_ms: wait_ms + extra,
                permitted,
                max_half_ms,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop::sample::select(vec![Outcome::Success, Outcome::Failure, Outcome::Ignored]);
    prop_oneof![
        5 => Just(Op::Acquire),
        5 => (any::<usize>(), outcome).prop_map(|(i, o)| Op::Record(i, o)),
        1 => any::<usize>().prop_map(Op::Drop),
        4 => (0u64..=40).prop_map(Op::Advance),
        1 => prop::sample::select(vec![Op::ForceOpen, Op::Disable, Op::Reset]),
    ]
}

fn build(c: &Cfg) -> BreakerConfig {
    let ms = Duration::from_millis;
    let mut b = BreakerConfig::builder()
        .minimum_calls(c.minimum_calls)
        .failure_rate_threshold(c.fail_pct as f64)
        .wait_in_open(ms(c.wait_ms))
        .open_backoff(c.mult as f64, ms(c.cap_ms))
        .permitted_calls_in_half_open(c.permitted)
        .max_wait_in_half_open(c.max_half_ms.map(ms));
    b = match c.window {
        Ok(n) => b.count_window(n),
        Err((bucket, buckets)) => b.time_window(ms(bucket * buckets as u64), buckets),
    };
    if let Some((slow_ms, pct)) = c.slow {
        b = b
            .slow_call_duration(ms(slow_ms))
            .slow_call_rate_threshold(pct as f64);
    }
    b.build().expect("generated configs are valid")
}

#[derive(Debug, Clone, Copy)]
struct MPermit {
    generation: u32,
    start: u64,
    probe: bool,
}

/// The reference: everything in plain fields, times in nanoseconds.
#[derive(Debug)]
struct Model {
    c: Cfg,
    state: State,
    generation: u32,
    reopens: u32,
    deadline: u64,
    count: VecDeque<(bool, bool)>,
    timed: Vec<(u64, bool, bool)>,
    issued: u32,
    done: u32,
    failed: u32,
    slow: u32,
}

const MS: u64 = 1_000_000;

impl Model {
    fn new(c: Cfg) -> Self {
        Model {
            c,
            state: State::Closed,
            generation: 0,
            reopens: 0,
            deadline: 0,
            count: VecDeque::new(),
            timed: Vec::new(),
            issued: 0,
            done: 0,
            failed: 0,
            slow: 0,
        }
    }

    fn wait(&self, reopens: u32) -> u64 {
        let mut w = self.c.wait_ms;
        for _ in 0..reopens {
            w = w.saturating_mul(self.c.mult).min(self.c.cap_ms);
        }
        w.min(self.c.cap_ms) * MS
    }

    /// (calls, failures, slow) in the window at `now`.
    fn counts(&self, now: u64) -> (u64, u64, u64) {
        let (mut n, mut f, mut s) = (0, 0, 0);
        let mut add = |fail: bool, slow: bool| {
            n += 1;
            f += fail as u64;
            s += slow as u64;
        };
        match self.c.window {
            Ok(_) => self.count.iter().for_each(|&(a, b)| add(a, b)),
            Err((bucket, buckets)) => {
                let e = now / (bucket * MS);
                self.timed
                    .iter()
                    .filter(|(ep, ..)| ep + buckets as u64 > e)
                    .for_each(|&(_, a, b)| add(a, b));
            }
        }
        (n, f, s)
    }

    fn reach(&self, (n, f, s): (u64, u64, u64)) -> bool {
        f * 100 >= self.c.fail_pct * n
            || matches!(self.c.slow, Some((_, pct)) if s * 100 >= pct * n)
    }

    fn clear(&mut self) {
        self.count.clear();
        self.timed.clear();
    }

    fn go(&mut self, to: State, reopens: u32, now: u64) {
        if self.state == State::Closed {
            self.clear();
        }
        self.state = to;
        self.generation += 1;
        self.reopens = reopens;
        (self.issued, self.done, self.failed, self.slow) = (0, 0, 0, 0);
        match to {
            State::Open => self.deadline = now + self.wait(reopens),
            State::HalfOpen => {
                self.deadline = self.c.max_half_ms.map_or(u64::MAX, |m| now + m * MS)
            }
            _ => {}
        }
    }

    fn acquire(&mut self, now: u64) -> Result<MPermit, Option<u64>> {
        let start = if self.c.slow.is_some() { now } else { 0 };
        let p = |generation, probe| MPermit {
            generation,
            start,
            probe,
        };
        match self.state {
            State::Closed | State::Disabled => Ok(p(self.generation, false)),
            State::ForcedOpen => Err(None),
            State::Open if now < self.deadline => Err(Some(self.deadline - now)),
            State::Open => {
                self.go(State::HalfOpen, self.reopens, now);
                self.issued = 1;
                Ok(p(self.generation, true))
            }
            State::HalfOpen if now >= self.deadline => {
                self.go(State::Open, self.reopens + 1, now);
                Err(Some(self.deadline - now))
            }
            State::HalfOpen if self.issued < self.c.permitted => {
                self.issued += 1;
                Ok(p(self.generation, true))
            }
            State::HalfOpen => Err(None),
        }
    }

    fn release(&mut self, p: MPermit) {
        if p.probe && p.generation == self.generation && self.state == State::HalfOpen {
            self.issued -= 1;
        }
    }

    fn record(&mut self, p: MPermit, o: Outcome, now: u64) {
        if p.generation != self.generation {
            return;
        }
        if o == Outcome::Ignored {
            return self.release(p);
        }
        let failed = o == Outcome::Failure;
        let slow = matches!(self.c.slow, Some((ms, _)) if now - p.start >= ms * MS);
        match self.state {
            State::Closed => {
                match self.c.window {
                    Ok(n) => {
                        if self.count.len() == n as usize {
                            self.count.pop_front();
                        }
                        self.count.push_back((failed, slow));
                    }
                    Err((bucket, _)) => self.timed.push((now / (bucket * MS), failed, slow)),
                }
                let c = self.counts(now);
                if c.0 >= self.c.minimum_calls as u64 && self.reach(c) {
                    self.go(State::Open, 0, now);
                }
            }
            State::HalfOpen => {
                self.done += 1;
                self.failed += failed as u32;
                self.slow += slow as u32;
                if self.done == self.c.permitted {
                    let c = (self.done as u64, self.failed as u64, self.slow as u64);
                    if self.reach(c) {
                        self.go(State::Open, self.reopens + 1, now);
                    } else {
                        self.go(State::Closed, 0, now);
                    }
                }
            }
            _ => {}
        }
    }

    fn force(&mut self, to: State, now: u64) {
        if self.state == to && to != State::Closed {
            return;
        }
        if to == State::Closed {
            self.clear();
        }
        self.go(to, 0, now);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_the_reference_model(c in cfg(), ops in prop::collection::vec(op(), 1..80)) {
        let breaker = Arc::new(Breaker::new(build(&c)));
        let mut model = Model::new(c.clone());
        let mut permits: Vec<Option<(Permit, MPermit)>> = Vec::new();
        let mut now = 0u64;
        for (step, op) in ops.into_iter().enumerate() {
            let t = Nanos::new(now);
            match op {
                Op::Acquire => {
                    let real = breaker.acquire(|| t);
                    let want = model.acquire(now);
                    match (real, want) {
                        (Ok(p), Ok(m)) => {
                            prop_assert_eq!(p.is_probe(), m.probe, "step {}", step);
                            permits.push(Some((p, m)));
                        }
                        (Err(r), Err(m)) => prop_assert_eq!(
                            r.retry_after(), m.map(Duration::from_nanos), "step {}", step),
                        (real, want) => prop_assert!(false,
                            "step {}: core {:?}, model {:?}", step, real.map(|_| ()), want.map(|_| ())),
                    }
                }
                Op::Record(i, o) if !permits.is_empty() => {
                    let i = i % permits.len();
                    if let Some((p, m)) = permits[i].take() {
                        p.record(o, || t);
                        model.record(m, o, now);
                    }
                }
                Op::Drop(i) if !permits.is_empty() => {
                    let i = i % permits.len();
                    if let Some((p, m)) = permits[i].take() {
                        drop(p);
                        model.release(m);
                    }
                }
                Op::Record(..) | Op::Drop(_) => {}
                Op::Advance(ms) => now += ms * MS,
                Op::ForceOpen => { breaker.force_open(t); model.force(State::ForcedOpen, now) }
                Op::Disable => { breaker.disable(t); model.force(State::Disabled, now) }
                Op::Reset => { breaker.reset(t); model.force(State::Closed, now) }
            }
            let m = breaker.metrics(Nanos::new(now));
            prop_assert_eq!(m.state, model.state, "step {}", step);
            let (n, f, s) = model.counts(now);
            prop_assert_eq!((m.calls, m.failures, m.slow_calls), (n, f, s), "step {}", step);
            prop_assert_eq!(m.generation, model.generation, "step {}", step);
        }
    }
}
