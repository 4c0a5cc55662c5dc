//! The retry response future: a state machine of calling, waiting and readying.

use super::error::{BudgetExhausted, RetriesExhausted};
use super::layer::Config;
use super::policy::{CloneRequest, Decision, Listener, Policy, RetryEvent, RetryReason};
use crate::error::BoxError;
use buttress_core::budget::{RetryBudget, Withdrawal};
use buttress_core::{Clock, Nanos};
use pin_project_lite::pin_project;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Sleep;
use tower_service::Service;

pin_project! {
    /// The future of a [`Retry`](super::Retry) call.
    ///
    /// Calling, then (if the policy retries) waiting, readying the inner service again,
    /// and calling again. The timer lives only in the waiting state: a first attempt
    /// that succeeds creates no timer and allocates nothing.
    pub struct ResponseFuture<S, Req, P, C, L>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        // The copy of the request for the next attempt, if there may be one.
        request: Option<Req>,
        attempts: Attempts<P, C, L>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // An attempt is in flight.
        Calling { #[pin] fut: F },
        // Waiting before the next attempt.
        Waiting { #[pin] sleep: Sleep },
        // Waiting for the inner service to be ready for the next attempt.
        Readying,
    }
}

/// Everything a call needs to decide on retries, kept by value in the future.
pub(crate) struct Attempts<P, C, L> {
    config: Config,
    budget: BudgetHold,
    start: Nanos,
    made: u32,
    seed: u64,
    rng: Option<SmallRng>,
    prev_delay: Nanos,
    policy: P,
    cloner: C,
    listener: L,
}

/// The budget of a call, and the withdrawal for a retry that is waiting: dropped before
/// the retry is sent (cancelled), the withdrawal is refunded.
struct BudgetHold {
    budget: Option<Arc<RetryBudget>>,
    pending: Option<Withdrawal>,
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        if let (Some(b), Some(w)) = (&self.budget, self.pending.take()) {
            b.refund(w);
        }
    }
}

/// What to do after an attempt.
enum Step {
    Return,
    Wait(Duration),
    BudgetRefused,
}

impl<P, C, L> Attempts<P, C, L> {
    pub(crate) fn new(
        config: Config,
        budget: Option<Arc<RetryBudget>>,
        start: Nanos,
        seed: u64,
        policy: P,
        cloner: C,
        listener: L,
    ) -> Self {
        Attempts {
            config,
            budget: BudgetHold {
                budget,
                pending: None,
            },
            start,
            made: 1,
            seed,
            rng: None,
            prev_delay: Nanos::ZERO,
            policy,
            cloner,
            listener,
        }
    }

    fn next_step<Req, Res>(&mut self, req: Option<&Req>, result: &Result<Res, BoxError>) -> Step
    where
        P: Policy<Req, Res>,
        L: Listener,
    {
        if self.made >= self.config.max_attempts {
            return Step::Return;
        }
        let Some(req) = req else {
            // The request could not be copied: it is sent once.
            return Step::Return;
        };
        let (delay, reason) = match self.policy.decide(req, result) {
            Decision::Return => return Step::Return,
            Decision::Retry => {
                let seed = self.seed;
                let rng = self
                    .rng
                    .get_or_insert_with(|| SmallRng::seed_from_u64(seed));
                let d = self.config.backoff.delay(self.made, self.prev_delay, rng);
                self.prev_delay = d;
                let reason = if result.is_ok() {
                    RetryReason::Response
                } else {
                    RetryReason::Error
                };
                (d, reason)
            }
            Decision::RetryAfter(wait) => (Nanos::from_duration(wait), RetryReason::Pushback),
        };
        if delay > self.config.max_wait {
            return Step::Return;
        }
        let mut now = None;
        if let Some(deadline) = self.config.deadline {
            let t = self.config.clock.now();
            now = Some(t);
            let ends = self.start + deadline;
            if t + delay + self.config.min_attempt_time > ends {
                return Step::Return;
            }
        }
        if let Some(budget) = &self.budget.budget {
            let t = now.unwrap_or_else(|| self.config.clock.now());
            match budget.try_withdraw(t) {
                Some(w) => self.budget.pending = Some(w),
                None => return Step::BudgetRefused,
            }
        }
        self.listener.on_retry(&RetryEvent {
            attempt: self.made + 1,
            delay: delay.as_duration(),
            reason,
        });
        Step::Wait(delay.as_duration())
    }

    fn finish<Res>(
        &self,
        result: Result<Res, BoxError>,
        budget_refused: bool,
    ) -> Result<Res, BoxError> {
        result.map_err(|e| {
            if budget_refused {
                Box::new(BudgetExhausted::after(self.made, e)) as BoxError
            } else if self.made > 1 {
                Box::new(RetriesExhausted::new(self.made, e)) as BoxError
            } else {
                e
            }
        })
    }
}

impl<S, Req, P, C, L> ResponseFuture<S, Req, P, C, L>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        fut: S::Future,
        service: S,
        request: Option<Req>,
        attempts: Attempts<P, C, L>,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { fut },
            service,
            request,
            attempts,
        }
    }
}

impl<S, Req, P, C, L> Future for ResponseFuture<S, Req, P, C, L>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response>,
    C: CloneRequest<Req>,
    L: Listener,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut } => {
                    let result = ready!(fut.poll(cx)).map_err(Into::into);
                    match this.attempts.next_step(this.request.as_ref(), &result) {
                        Step::Return => return Poll::Ready(this.attempts.finish(result, false)),
                        Step::BudgetRefused => {
                            return Poll::Ready(this.attempts.finish(result, true));
                        }
                        Step::Wait(delay) => this.state.set(State::Waiting {
                            sleep: tokio::time::sleep(delay),
                        }),
                    }
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    if let Err(e) = ready!(this.service.poll_ready(cx)) {
                        let e: BoxError = e.into();
                        // The retry is not sent: give its withdrawal back.
                        if let (Some(b), Some(w)) = (
                            &this.attempts.budget.budget,
                            this.attempts.budget.pending.take(),
                        ) {
                            b.refund(w);
                        }
                        return Poll::Ready(Err(Box::new(RetriesExhausted::new(
                            this.attempts.made,
                            e,
                        ))));
                    }
                    // `next_step` only waits when there is a copy of the request.
                    let Some(req) = this.request.take() else {
                        unreachable!("a retry is only scheduled with a copy of the request")
                    };
                    this.attempts.made += 1;
                    if this.attempts.made < this.attempts.config.max_attempts {
                        *this.request = this.attempts.cloner.clone_request(&req);
                    }
                    // The retry is sent: its withdrawal is spent.
                    this.attempts.budget.pending = None;
                    let fut = this.service.call(req);
                    this.state.set(State::Calling { fut });
                }
            }
        }
    }
}

impl<S, Req, P, C, L> fmt::Debug for ResponseFuture<S, Req, P, C, L>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts.made)
            .finish_non_exhaustive()
    }
}
