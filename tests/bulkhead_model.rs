//! The bulkhead layer against a plain reference model, through tower's `Service` API:
//! random sequences of calls, completions and cancellations, in the reject-at-once
//! mode and in the waiting mode (a bounded first-come-first-served queue), and after
//! every step the same calls admitted, queued and refused, and the handle's counts
//! equal to the model's.
//!
//! Calls are made and polled by hand in arrival order (the queue's order is that of
//! first polls), each inner call waits on a gate the test opens, and `max_wait` is an
//! hour that paused time never reaches, so nothing depends on timing.

use buttress::bulkhead::{BulkheadFull, BulkheadLayer};
use proptest::prelude::*;
use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Debug, Clone)]
enum Op {
    /// A new call.
    Call,
    /// The `n`-th (modulo) admitted call's inner service answers.
    Finish(usize),
    /// The `n`-th (modulo) live call, admitted or queued, is dropped.
    Cancel(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            4 => Just(Op::Call),
            3 => any::<usize>().prop_map(Op::Finish),
            1 => any::<usize>().prop_map(Op::Cancel),
        ],
        1..60,
    )
}

/// The reference: slots, a FIFO queue, and what happened to each call.
#[derive(Debug, Default)]
struct Model {
    max: usize,
    /// `Some(bound)`: the waiting mode, with at most `bound` calls queued.
    queue_bound: Option<usize>,
    in_flight: BTreeSet<usize>,
    queue: VecDeque<usize>,
    admitted: BTreeSet<usize>,
    refused: BTreeSet<usize>,
}

impl Model {
    fn call(&mut self, id: usize) {
        if self.in_flight.len() < self.max && self.queue.is_empty() {
            self.in_flight.insert(id);
            self.admitted.insert(id);
        } else if self.queue_bound.is_some_and(|b| self.queue.len() < b) {
            self.queue.push_back(id);
        } else {
            self.refused.insert(id);
        }
    }

    /// A slot is free: the oldest waiter takes it.
    fn free(&mut self, id: usize) {
        self.in_flight.remove(&id);
        if let Some(next) = self.queue.pop_front() {
            self.in_flight.insert(next);
            self.admitted.insert(next);
        }
    }

    fn cancel(&mut self, id: usize) {
        if self.in_flight.contains(&id) {
            self.free(id);
        } else {
            self.queue.retain(|&q| q != id);
        }
    }
}

type Call = Pin<Box<dyn Future<Output = Result<(), buttress::BoxError>>>>;

/// A live call of the real bulkhead: its future and the gate its inner call waits on.
struct Live {
    id: usize,
    fut: Call,
    gate: Option<oneshot::Sender<()>>,
}

fn run(max: usize, queue_bound: Option<usize>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let mut builder = BulkheadLayer::builder().max_concurrent(max);
        if let Some(bound) = queue_bound {
            builder = builder
                .max_wait(Duration::from_secs(3600))
                .max_waiting(bound);
        }
        let layer = builder.build().expect("a valid bulkhead");
        let handle = layer.handle();
        // The ids whose inner call started: the calls the bulkhead admitted.
        let started = Arc::new(Mutex::new(BTreeSet::new()));
        let seen = Arc::clone(&started);
        let mut svc = layer.layer(service_fn(
            move |(id, gate): (usize, oneshot::Receiver<()>)| {
                seen.lock().unwrap().insert(id);
                async move {
                    let _ = gate.await;
                    Ok::<_, Infallible>(())
                }
            },
        ));
        let mut model = Model {
            max,
            queue_bound,
            ..Model::default()
        };
        let mut live: Vec<Live> = Vec::new();
        let mut refused = BTreeSet::new();
        let mut next_id = 0;
        for op in ops {
            match op {
                Op::Call => {
                    let id = next_id;
                    next_id += 1;
                    let (tx, rx) = oneshot::channel();
                    let fut = svc.ready().await.expect("ready").call((id, rx));
                    live.push(Live {
                        id,
                        fut: Box::pin(fut),
                        gate: Some(tx),
                    });
                    model.call(id);
                }
                Op::Finish(n) => {
                    let admitted: Vec<usize> = live
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| model.in_flight.contains(&l.id) && l.gate.is_some())
                        .map(|(i, _)| i)
                        .collect();
                    if admitted.is_empty() {
                        continue;
                    }
                    let i = admitted[n % admitted.len()];
                    let id = live[i].id;
                    let _ = live[i].gate.take().expect("open").send(());
                    model.free(id);
                }
                Op::Cancel(n) => {
                    if live.is_empty() {
                        continue;
                    }
                    let gone = live.remove(n % live.len());
                    model.cancel(gone.id);
                }
            }
            // Poll every live call, in arrival order, until nothing moves.
            for _ in 0..3 {
                let mut still = Vec::new();
                for mut l in live.drain(..) {
                    let polled = poll_fn(|cx| Poll::Ready(l.fut.as_mut().poll(cx))).await;
                    match polled {
                        Poll::Pending => still.push(l),
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => {
                            prop_assert!(e.is::<BulkheadFull>(), "{e}");
                            refused.insert(l.id);
                        }
                    }
                }
                live = still;
                tokio::task::yield_now().await;
            }
            prop_assert_eq!(&*started.lock().unwrap(), &model.admitted);
            prop_assert_eq!(&refused, &model.refused);
            prop_assert_eq!(handle.in_flight(), model.in_flight.len());
            prop_assert_eq!(handle.available(), max - model.in_flight.len());
            if queue_bound.is_some() {
                prop_assert_eq!(handle.waiting(), model.queue.len());
            }
        }
        // Every call ends: the gates open, the rest are dropped; every slot is back.
        drop(live);
        tokio::task::yield_now().await;
        prop_assert_eq!(handle.in_flight(), 0);
        prop_assert_eq!(handle.available(), max);
        prop_assert_eq!(handle.waiting(), 0);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn rejecting_at_once_matches_the_model(max in 1usize..4, ops in ops()) {
        run(max, None, ops)?;
    }

    #[test]
    fn waiting_in_turn_matches_the_model(
        max in 1usize..4,
        bound in 1usize..4,
        ops in ops(),
    ) {
        run(max, Some(bound), ops)?;
    }
}
