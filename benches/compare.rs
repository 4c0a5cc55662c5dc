//! The comparison suite: every row of `rows` — the bare service, each buttress layer,
//! the full pipeline, and the peers doing the same work — in one criterion run.
//!
//! Each row is timed as `ready().await` + `call().await` on a current-thread tokio
//! runtime, over the trivial always-ready service (group `trivial`) and over an
//! `http::Request<()>` -> `http::Response<()>` service (group `http`). The rows marked
//! for it are timed again with two OS threads sharing one instance (group
//! `trivial_2threads`): each thread has its own current-thread runtime and a clone of
//! the service, both start together and each makes every one of the iterations'
//! calls, and the figure is wall time over the calls of one thread: the time a call
//! takes on each thread while the other calls through the same layer (with no
//! contention at all it equals the 1-thread figure).
//!
//! This suite runs under the system allocator (allocation counts come from the
//! `allocs` bench), so that rows which allocate are not slowed by a counting one.
//! `scripts/bench` runs it with the rest and writes `BENCHMARKS.md`.

#[path = "support/services.rs"]
mod services;

mod peers;
mod rows;

use std::hint::black_box;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use tower::Service;

use rows::{Row, TWO_THREADS, Visit, Workload, call};

/// Which of the three groups a pass over the rows times.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Trivial,
    TwoThreads,
    Http,
}

/// One pass over the rows, timing those that belong to its group.
struct Timings<'g, 'c> {
    pass: Pass,
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    rt: &'g tokio::runtime::Runtime,
}

impl Visit for Timings<'_, '_> {
    fn visit<Req, S>(&mut self, row: Row, svc: S, req: fn(u64) -> Req)
    where
        Req: 'static,
        S: Service<Req> + Clone + Send + 'static,
        S::Error: std::fmt::Debug,
    {
        match (self.pass, row.workload) {
            (Pass::Trivial, Workload::Trivial) | (Pass::Http, Workload::Http) => {
                let rt = self.rt;
                self.group.bench_function(row.id, |b| {
                    b.iter_custom(|iters| {
                        let mut svc = svc.clone();
                        rt.block_on(async {
                            let start = Instant::now();
                            for i in 0..iters {
                                services::consume(call(&mut svc, req(black_box(i))).await);
                            }
                            start.elapsed()
                        })
                    })
                });
            }
            (Pass::TwoThreads, Workload::Trivial) if row.two_threads => {
                let pair = Pair::new(svc, req);
                self.group
                    .bench_function(row.id, |b| b.iter_custom(|iters| pair.run(iters)));
            }
            _ => {}
        }
    }
}

/// Two OS threads, each with its own current-thread runtime and a clone of one
/// service, kept for the whole row so that spawning them is not timed.
struct Pair {
    go: Vec<mpsc::Sender<u64>>,
    done: mpsc::Receiver<(Instant, Instant)>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl Pair {
    fn new<Req, S>(svc: S, req: fn(u64) -> Req) -> Self
    where
        Req: 'static,
        S: Service<Req> + Clone + Send + 'static,
    {
        let barrier = Arc::new(Barrier::new(2));
        let (done_tx, done) = mpsc::channel();
        let mut go = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = mpsc::channel::<u64>();
            let mut svc = svc.clone();
            let barrier = Arc::clone(&barrier);
            let done_tx = done_tx.clone();
            workers.push(thread::spawn(move || {
                let rt = services::runtime();
                while let Ok(n) = rx.recv() {
                    // Both threads start together: the slower wake-up is not timed.
                    barrier.wait();
                    let (start, end) = rt.block_on(async {
                        let start = Instant::now();
                        for i in 0..n {
                            services::consume(call(&mut svc, req(black_box(i))).await);
                        }
                        (start, Instant::now())
                    });
                    if done_tx.send((start, end)).is_err() {
                        return;
                    }
                }
            }));
            go.push(tx);
        }
        Pair { go, done, workers }
    }

    /// Makes `iters` calls on each thread at once; returns the wall time from the first
    /// thread's start to the last one's end, which criterion divides by `iters`: the
    /// per-call time on each thread.
    fn run(&self, iters: u64) -> Duration {
        self.go[0].send(iters).expect("worker alive");
        self.go[1].send(iters).expect("worker alive");
        let (s0, e0) = self.done.recv().expect("worker alive");
        let (s1, e1) = self.done.recv().expect("worker alive");
        e0.max(e1) - s0.min(s1)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.go.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn compare(c: &mut Criterion) {
    let rt = services::runtime();
    // Some rows (tower's `RateLimit`) need a runtime context to be built.
    let _context = rt.enter();
    for (pass, name) in [
        (Pass::Trivial, Workload::Trivial.group()),
        (Pass::TwoThreads, TWO_THREADS),
        (Pass::Http, Workload::Http.group()),
    ] {
        let mut group = c.benchmark_group(name);
        rows::visit_all(&mut Timings {
            pass,
            group: &mut group,
            rt: &rt,
        });
        group.finish();
    }
}

criterion_group!(benches, compare);
criterion_main!(benches);
