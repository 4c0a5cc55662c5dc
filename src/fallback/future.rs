//! The fallback's response future.

use super::handler::{Recover, Recovery};
use crate::BoxError;
use crate::classify::{Classify, Outcome};
use crate::observe::FallbackObs;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pin_project! {
    /// The response future of [`Fallback`](super::Fallback): the primary call, then, on
    /// a failure, the fallback's.
    ///
    /// What a fallback needs (the handler, the policy, the saved request) lives inside
    /// the primary state, so the success path reads one tag and classifies; it is moved
    /// out only on a failure.
    pub struct ResponseFuture<F, Fb, H, P, Sv> {
        #[pin]
        state: State<F, Fb, H, P, Sv>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, Fb, H, P, Sv> {
        Primary {
            #[pin]
            fut: F,
            handler: H,
            policy: P,
            saved: Sv,
            // With `metrics` or `tracing`: the instance's instruments.
            obs: FallbackObs,
        },
        // Only for a fallback that does not answer at once (a fallback service): for
        // the others `Fb` has no values, and neither has this variant.
        Fallback { #[pin] fut: Fb },
        // After a fallback answered at once; also between taking the handler out and
        // starting the fallback's future, so after a panic there.
        Done,
    }
}

impl<F, Fb, H, P, Sv> ResponseFuture<F, Fb, H, P, Sv> {
    #[inline]
    pub(super) fn new(fut: F, handler: H, policy: P, saved: Sv, obs: FallbackObs) -> Self {
        ResponseFuture {
            state: State::Primary {
                fut,
                handler,
                policy,
                saved,
                obs,
            },
        }
    }
}

impl<F, Fb, H, P, Sv> fmt::Debug for ResponseFuture<F, Fb, H, P, Sv> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Primary { .. } => "primary",
            State::Fallback { .. } => "fallback",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, Fb, H, P, Sv, T, E> Future for ResponseFuture<F, Fb, H, P, Sv>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    P: Classify<T, E>,
    H: Recover<Sv, T, E, Future = Fb>,
    Fb: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    // Always inlined: the success path is a tag check, the inner poll and a
    // classification; the failure is out of line. Nothing else here calls anything: a
    // fallback that answers at once has no future (its arm below is compiled out), a
    // fallback service's future keeps its poll out of line, and the error of a poll
    // after completion is a zero-sized box, which allocates nothing. Any call left here
    // would make this future cost the caller's future enough for the compiler not to
    // inline it into its own caller, and every success would pay that call (about 3 ns
    // in the benches).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        match state.as_mut().project() {
            StateProj::Primary { fut, policy, .. } => {
                let result = ready!(fut.poll(cx));
                // The success path: one classification, one branch.
                if policy.classify(&result) != Outcome::Failure {
                    return Poll::Ready(result.map_err(Into::into));
                }
                fall_back(state, result, cx)
            }
            StateProj::Fallback { fut } => fut.poll(cx),
            StateProj::Done => Poll::Ready(Err(Box::new(PolledAfterCompletion))),
        }
    }
}

/// The error of a response future polled again after it completed (or after the
/// fallback's handler panicked).
#[derive(Debug)]
struct PolledAfterCompletion;

impl fmt::Display for PolledAfterCompletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fallback polled after completion")
    }
}

impl std::error::Error for PolledAfterCompletion {}

/// A failure: moves what the fallback needs out of the primary state (whose finished
/// future is dropped), and answers at once or starts the fallback's future. Out of line,
/// so that the success path stays small enough to inline into the caller.
#[cold]
#[inline(never)]
fn fall_back<F, Fb, H, P, Sv, T, E>(
    mut state: Pin<&mut State<F, Fb, H, P, Sv>>,
    failed: Result<T, E>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, BoxError>>
where
    H: Recover<Sv, T, E, Future = Fb>,
    Fb: Future<Output = Result<T, BoxError>>,
{
    let StateReplace::Primary {
        handler,
        saved,
        obs,
        ..
    } = state.as_mut().project_replace(State::Done)
    else {
        return Poll::Ready(Err(Box::new(PolledAfterCompletion)));
    };
    obs.taken();
    match handler.recover(failed, saved) {
        Recovery::Now(answer) => Poll::Ready(answer),
        Recovery::Later(fut) => {
            state.set(State::Fallback { fut });
            match state.project() {
                StateProj::Fallback { fut } => fut.poll(cx),
                _ => Poll::Ready(Err(Box::new(PolledAfterCompletion))),
            }
        }
    }
}
