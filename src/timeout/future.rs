//! The timeout response future: the timer is armed only if the call is not ready at
//! once.

use super::error::Elapsed;
use crate::error::BoxError;
use crate::observe::TimeoutObs;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pin_project! {
    /// The future of a [`Timeout`](super::Timeout) call.
    ///
    /// The first poll polls the inner future before anything else: a call that is ready
    /// at once reads no clock and creates no timer. Otherwise the timer is armed then,
    /// for the whole duration from that first poll (which is, for a future awaited as
    /// soon as it is made, the moment of the call), or from the call itself where the
    /// limit says so ([`TimeoutFor::counts_from_call`](super::TimeoutFor::counts_from_call)). When it fires, the inner future is
    /// dropped (cancelled) at once and the call fails with [`Elapsed`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Inner<F>,
        #[pin]
        timer: Timer,
        // With `metrics` or `tracing`: the instance's instruments, for a cut call.
        obs: TimeoutObs,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<F> {
        Running { #[pin] fut: F },
        Cancelled,
    }
}

pin_project! {
    #[project = TimerProj]
    enum Timer {
        // `since`: when the time started running, if at the call (else at arming).
        Unarmed { after: Option<Duration>, since: Option<Instant> },
        Armed { #[pin] sleep: Sleep, after: Duration },
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn new(
        fut: F,
        after: Option<Duration>,
        since: Option<Instant>,
        obs: TimeoutObs,
    ) -> Self {
        ResponseFuture {
            inner: Inner::Running { fut },
            timer: Timer::Unarmed { after, since },
            obs,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        match this.inner.as_mut().project() {
            InnerProj::Running { fut } => {
                if let Poll::Ready(r) = fut.poll(cx) {
                    return Poll::Ready(r.map_err(Into::into));
                }
            }
            InnerProj::Cancelled => return Poll::Ready(Err(Box::new(Elapsed::new()))),
        }
        if let TimerProj::Unarmed { after, since } = this.timer.as_mut().project() {
            match (*after, *since) {
                // No limit for this request.
                (None, _) => return Poll::Pending,
                // No time at all (a per-request limit already used up): the call was
                // not ready at once, so it is cut now. A zero-length sleep would only
                // fire at the timer's next tick, letting through whatever ends first.
                (Some(d), _) if d.is_zero() => {
                    this.inner.set(Inner::Cancelled);
                    this.obs.elapsed(d);
                    return Poll::Ready(Err(Box::new(Elapsed::new())));
                }
                (Some(d), None) => this.timer.set(Timer::Armed {
                    sleep: tokio::time::sleep(d),
                    after: d,
                }),
                // A far end (an overflowing instant) never comes.
                (Some(d), Some(t)) => this.timer.set(Timer::Armed {
                    sleep: match t.checked_add(d) {
                        Some(end) => tokio::time::sleep_until(end),
                        None => tokio::time::sleep(d),
                    },
                    after: d,
                }),
            }
        }
        if let TimerProj::Armed { sleep, after } = this.timer.project() {
            if sleep.poll(cx).is_ready() {
                // Cancel the call now, not when this future is dropped.
                this.inner.set(Inner::Cancelled);
                this.obs.elapsed(*after);
                return Poll::Ready(Err(Box::new(Elapsed::new())));
            }
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let armed = matches!(self.timer, Timer::Armed { .. });
        f.debug_struct("ResponseFuture")
            .field("armed", &armed)
            .finish_non_exhaustive()
    }
}
