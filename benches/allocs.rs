//! Allocations and bytes per call for every row of the comparison, on 1 thread and on
//! 2 threads sharing one instance, counted by the `stats_alloc` allocator of
//! `support`.
//!
//! `cargo bench --bench allocs` counts over many calls after a warm-up and writes
//! `allocs.tsv` into the report directory (see `report.rs`); run once in test mode
//! (`cargo test --benches`) it makes a few calls through every row and fails if any
//! of them is refused, which keeps every row's configuration honest.

mod peers;
mod rows;
mod support;

use support as services;

use std::sync::{Arc, Barrier};
use std::thread;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region};
use tower::Service;

use rows::{Row, Visit, call};

/// One measured row: `mode` is `1` or `2` threads.
struct Count {
    row: Row,
    threads: u32,
    allocs: f64,
    bytes: f64,
}

struct Allocs {
    warm_up: u64,
    calls: u64,
    rt: tokio::runtime::Runtime,
    out: Vec<Count>,
}

/// Makes `n` calls through `svc`, panicking on the first refusal: every row is
/// configured so that none happens, and a row that is refused measures the wrong path.
async fn calls<S, Req>(row: &Row, svc: &mut S, req: fn(u64) -> Req, n: u64)
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    for i in 0..n {
        let result = call(svc, req(i)).await;
        if row.refuses {
            assert!(
                result.is_err(),
                "row {}/{} admitted a call",
                row.workload.group(),
                row.id
            );
        } else if let Err(e) = result {
            panic!(
                "row {}/{} refused a call: {e:?}",
                row.workload.group(),
                row.id
            );
        }
    }
}

impl Visit for Allocs {
    fn visit<Req, S>(&mut self, row: Row, svc: S, req: fn(u64) -> Req)
    where
        Req: 'static,
        S: Service<Req> + Clone + Send + 'static,
        S::Error: std::fmt::Debug,
    {
        let (warm_up, n) = (self.warm_up, self.calls);

        // One thread.
        let mut one = svc.clone();
        let stats = self.rt.block_on(async {
            calls(&row, &mut one, req, warm_up).await;
            let region = Region::new(&INSTRUMENTED_SYSTEM);
            calls(&row, &mut one, req, n).await;
            region.change()
        });
        self.out.push(Count {
            row,
            threads: 1,
            allocs: stats.allocations as f64 / n as f64,
            bytes: stats.bytes_allocated as f64 / n as f64,
        });

        if !row.two_threads {
            return;
        }
        // Two threads sharing `svc`, twice: with `n / 2` and with `n` calls each. What
        // the experiment itself allocates (waking a thread through a barrier may) is
        // the same in both and cancels in the difference.
        let short = two_threads(&row, &svc, req, warm_up, n / 2);
        let long = two_threads(&row, &svc, req, warm_up, n);
        let extra = 2 * (n - n / 2);
        self.out.push(Count {
            row,
            threads: 2,
            allocs: long.0.saturating_sub(short.0) as f64 / extra as f64,
            bytes: long.1.saturating_sub(short.1) as f64 / extra as f64,
        });
    }
}

/// Allocations and bytes while two threads, each with its own runtime and a clone of
/// `svc`, make `n` calls each: both warm up, then the count starts, then both call,
/// then it stops, before either thread tears down.
fn two_threads<S, Req>(
    row: &Row,
    svc: &S,
    req: fn(u64) -> Req,
    warm_up: u64,
    n: u64,
) -> (usize, usize)
where
    Req: 'static,
    S: Service<Req> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
{
    let warmed = Arc::new(Barrier::new(3));
    let go = Arc::new(Barrier::new(3));
    let done = Arc::new(Barrier::new(3));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut svc = svc.clone();
            let row = *row;
            let (warmed, go, done) = (warmed.clone(), go.clone(), done.clone());
            thread::spawn(move || {
                let rt = services::runtime();
                // One `block_on` for all of it (the barriers block the thread, which
                // has nothing else to run): entering the runtime is not counted.
                rt.block_on(async {
                    calls(&row, &mut svc, req, warm_up).await;
                    warmed.wait();
                    go.wait();
                    calls(&row, &mut svc, req, n).await;
                    done.wait();
                });
            })
        })
        .collect();
    warmed.wait();
    let region = Region::new(&INSTRUMENTED_SYSTEM);
    go.wait();
    done.wait();
    let stats = region.change();
    for w in workers {
        w.join().expect("worker");
    }
    (stats.allocations, stats.bytes_allocated)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = services::runtime();
    // Some rows (tower's `RateLimit`) need a runtime context to be built.
    let _context = rt.enter();
    let mut allocs = Allocs {
        warm_up: if bench { 1_000 } else { 3 },
        calls: if bench { 20_000 } else { 10 },
        rt: services::runtime(),
        out: Vec::new(),
    };
    rows::visit_all(&mut allocs);

    let mut tsv = String::from("workload\tid\tthreads\tallocs\tbytes\n");
    for c in &allocs.out {
        support::report_allocs(
            &format!(
                "{}/{} ({} thread(s))",
                c.row.workload.group(),
                c.row.id,
                c.threads
            ),
            c.allocs,
            c.bytes,
        );
        tsv.push_str(&format!(
            "{}\t{}\t{}\t{:.3}\t{:.1}\n",
            c.row.workload.group(),
            c.row.id,
            c.threads,
            c.allocs,
            c.bytes
        ));
    }
    if bench {
        let path = rows::report_dir().join("allocs.tsv");
        std::fs::write(&path, tsv).expect("write allocs.tsv");
        println!("wrote {}", path.display());
    }
}
