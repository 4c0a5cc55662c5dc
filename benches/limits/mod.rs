//! Timing helpers shared by the bulkhead, rate-limit and fallback suites: one call after
//! another on one thread, and the same on two threads sharing one instance.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

pub use crate::support::{one_thread, two_threads};

/// Two threads running `f` `iters` times each at once; the slower thread's time.
pub fn two_threads_fn<F>(f: F, iters: u64) -> Duration
where
    F: Fn(u64) + Clone + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let f = f.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..iters {
                    f(black_box(i));
                }
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

/// Short runs: the suites have many rows and the machine is shared.
pub fn config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}
