//! A circuit breaker in front of a backend that fails in bursts.
//!
//! `cargo run --example quickstart` calls an in-process service every 40 ms for three
//! seconds and prints each call, each rejection and each state transition with its
//! time. The backend is healthy, fails for 0.8 s, recovers, then fails again briefly:
//! watch the breaker open, probe, open again for longer, close once the backend is
//! back, and open for the first (short) wait again on the second burst.

use buttress::circuit_breaker::{CircuitBreakerLayer, State};
use buttress::error::{BoxError, rejection};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// The backend fails from 0.6 s to 1.4 s after start, and again from 2.2 s to 2.5 s.
fn backend_is_down(since_start: Duration) -> bool {
    let ms = since_start.as_millis();
    (600..1400).contains(&ms) || (2200..2500).contains(&ms)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let start = Instant::now();

    let breaker = CircuitBreakerLayer::builder()
        .name("backend")
        .count_window(10)
        .minimum_calls(5)
        .failure_rate_threshold(50.0)
        .wait_in_open(Duration::from_millis(250))
        .open_backoff(2.0, Duration::from_millis(1000))
        .permitted_calls_in_half_open(2)
        .on_transition(|t| {
            println!(
                "{:>7.3}s  ==== {} {} -> {}",
                t.at.as_duration().as_secs_f64(),
                t.name.unwrap_or("breaker"),
                t.from,
                t.to
            )
        })
        .build()?;
    let handle = breaker.handle();

    let mut svc =
        ServiceBuilder::new()
            .layer(breaker)
            .service(service_fn(move |n: u32| async move {
                if backend_is_down(start.elapsed()) {
                    Err::<u32, BoxError>(format!("call {n}: backend unavailable").into())
                } else {
                    Ok(n)
                }
            }));

    let mut tick = tokio::time::interval(Duration::from_millis(40));
    let (mut ok, mut failed, mut rejected) = (0, 0, 0);
    for n in 1..=75u32 {
        tick.tick().await;
        let at = start.elapsed().as_secs_f64();
        match svc.ready().await?.call(n).await {
            Ok(_) => {
                ok += 1;
                println!("{at:>7.3}s  call {n:>2}: ok");
            }
            Err(e) => match rejection(&*e) {
                Some(r) => {
                    rejected += 1;
                    let wait = r
                        .retry_after()
                        .map_or("unknown".to_owned(), |d| format!("{d:?}"));
                    println!("{at:>7.3}s  call {n:>2}: rejected ({e}, retry after {wait})");
                }
                None => {
                    failed += 1;
                    println!("{at:>7.3}s  call {n:>2}: failed ({e})");
                }
            },
        }
    }

    let m = handle.metrics();
    println!(
        "\n{ok} ok, {failed} failed, {rejected} rejected without touching the backend; \
         final state {}, window {} calls, {:.0} % failed",
        m.state, m.calls, m.failure_rate
    );
    assert_eq!(handle.state(), State::Closed, "the backend recovered");
    Ok(())
}
