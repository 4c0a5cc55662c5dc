//! The breaker's state word: every field the state machine decides on, packed into one
//! `u64` so that a single compare-and-swap moves the breaker from one state to the next.

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass; outcomes are recorded in the window, and the breaker trips when a rate
    /// reaches its threshold.
    Closed,
    /// Calls are rejected until the open wait has passed; the first call after it moves
    /// the breaker to [`State::HalfOpen`].
    Open,
    /// A limited number of probe calls pass; their outcomes decide whether the breaker
    /// closes or opens again.
    HalfOpen,
    /// Opened by hand: every call is rejected until `reset` (or `disable`).
    ForcedOpen,
    /// Switched off by hand: every call passes and nothing is recorded.
    Disabled,
}

impl State {
    /// A short lowercase name, stable for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    const fn tag(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
        }
    }

    const fn from_tag(tag: u64) -> State {
        match tag {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            // Only the five tags above are ever stored.
            _ => State::Disabled,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The packed state word.
///
/// ```text
///  63                    40 39      32 31      24 23      16 15       8 7     3 2   0
/// +------------------------+----------+----------+----------+----------+-------+-----+
/// |   generation (24 bits) | ho slow  | ho fail  | ho done  | ho issued|reopens| tag |
/// +------------------------+----------+----------+----------+----------+-------+-----+
/// ```
///
/// - `tag` (3 bits): the [`State`].
/// - `reopens` (5 bits, saturating at 31): consecutive half-open -> open transitions
///   since the breaker last closed; the exponent of the open-wait backoff.
/// - `ho issued` (8 bits): half-open probe permits handed out and not given back
///   (dropped or ignored probes give theirs back).
/// - `ho done`, `ho fail`, `ho slow` (8 bits each): probe outcomes counted so far in
///   this half-open period, and how many of them failed or were slow.
/// - `generation` (24 bits, wrapping): bumped by every transition. A permit remembers
///   the generation it was issued in, and its outcome is only counted while the word
///   still carries that generation.
///
/// All four probe counters are zero outside `HalfOpen`, and at most 255 probes are
/// allowed (checked by the config builder), so none of them can overflow its field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Word(pub(crate) u64);

const TAG_MASK: u64 = 0b111;
const REOPENS_SHIFT: u32 = 3;
const REOPENS_MAX: u64 = 31;
const ISSUED_SHIFT: u32 = 8;
const DONE_SHIFT: u32 = 16;
const FAILED_SHIFT: u32 = 24;
const SLOW_SHIFT: u32 = 32;
const BYTE: u64 = 0xff;
const GEN_SHIFT: u32 = 40;
/// Generations wrap at 2^24.
pub(crate) const GEN_MASK: u32 = (1 << 24) - 1;

/// Whether generation `generation` comes after `than`, as generations wrap (24 bits):
/// up to half the range ahead counts as after. For whoever orders what arrives late
/// against what it already holds (a window's stamps, a listener's transitions).
pub fn generation_is_after(generation: u32, than: u32) -> bool {
    let ahead = generation.wrapping_sub(than) & GEN_MASK;
    ahead != 0 && ahead <= GEN_MASK / 2
}

impl Word {
    /// Closed, generation 0.
    pub(crate) const INITIAL: Word = Word(0);

    /// Whether the state is `Closed`: one mask and compare, for the hot paths.
    #[inline]
    pub(crate) const fn is_closed(self) -> bool {
        self.0 & TAG_MASK == 0
    }

    #[inline]
    pub(crate) const fn state(self) -> State {
        State::from_tag(self.0 & TAG_MASK)
    }

    #[inline]
    pub(crate) const fn reopens(self) -> u32 {
        ((self.0 >> REOPENS_SHIFT) & REOPENS_MAX) as u32
    }

    /// Closed, in generation `generation` (one comparison).
    #[inline]
    pub(crate) const fn is_closed_in(self, generation: u32) -> bool {
        self.0 & (TAG_MASK | (GEN_MASK as u64) << GEN_SHIFT) == (generation as u64) << GEN_SHIFT
    }

    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32 & GEN_MASK
    }

    #[inline]
    pub(crate) const fn issued(self) -> u32 {
        ((self.0 >> ISSUED_SHIFT) & BYTE) as u32
    }

    #[inline]
    pub(crate) const fn done(self) -> u32 {
        ((self.0 >> DONE_SHIFT) & BYTE) as u32
    }

    #[inline]
    pub(crate) const fn failed(self) -> u32 {
        ((self.0 >> FAILED_SHIFT) & BYTE) as u32
    }

    #[inline]
    pub(crate) const fn slow(self) -> u32 {
        ((self.0 >> SLOW_SHIFT) & BYTE) as u32
    }

    /// The word of the next generation: `state`, `reopens` (saturating at 31), and
    /// every probe counter zero.
    #[inline]
    pub(crate) const fn next(self, state: State, reopens: u32) -> Word {
        let generation = (self.generation().wrapping_add(1) & GEN_MASK) as u64;
        let reopens = if reopens as u64 > REOPENS_MAX {
            REOPENS_MAX
        } else {
            reopens as u64
        };
        Word((generation << GEN_SHIFT) | (reopens << REOPENS_SHIFT) | state.tag())
    }

    /// The same word with the half-open probe counters replaced (each at most 255).
    #[inline]
    pub(crate) const fn with_probes(self, issued: u32, done: u32, failed: u32, slow: u32) -> Word {
        let kept = self.0
            & !((BYTE << ISSUED_SHIFT)
                | (BYTE << DONE_SHIFT)
                | (BYTE << FAILED_SHIFT)
                | (BYTE << SLOW_SHIFT));
        Word(
            kept | ((issued as u64 & BYTE) << ISSUED_SHIFT)
                | ((done as u64 & BYTE) << DONE_SHIFT)
                | ((failed as u64 & BYTE) << FAILED_SHIFT)
                | ((slow as u64 & BYTE) << SLOW_SHIFT),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let w = Word::INITIAL
            .next(State::HalfOpen, 7)
            .with_probes(5, 4, 3, 2);
        assert_eq!(w.state(), State::HalfOpen);
        assert_eq!(w.reopens(), 7);
        assert_eq!(w.generation(), 1);
        assert_eq!((w.issued(), w.done(), w.failed(), w.slow()), (5, 4, 3, 2));
        let n = w.next(State::Open, 99);
        assert_eq!(n.reopens(), 31);
        assert_eq!((n.issued(), n.done(), n.failed(), n.slow()), (0, 0, 0, 0));
        assert_eq!(n.generation(), 2);
    }

    #[test]
    fn generation_wraps() {
        let w = Word((GEN_MASK as u64) << GEN_SHIFT);
        assert_eq!(w.generation(), GEN_MASK);
        assert_eq!(w.next(State::Closed, 0).generation(), 0);
    }

    #[test]
    fn closed_in_a_generation_is_both_at_once() {
        for g in [0, 1, 77, GEN_MASK] {
            let closed = Word((g as u64) << GEN_SHIFT);
            assert!(closed.is_closed_in(g));
            assert!(!closed.is_closed_in(g.wrapping_add(1) & GEN_MASK));
            for to in [
                State::Open,
                State::HalfOpen,
                State::Disabled,
                State::ForcedOpen,
            ] {
                // Same generation, other state; and the probe and reopen bits aside.
                let other = Word(closed.0 | to.tag());
                assert!(!other.is_closed_in(g), "{to:?}");
            }
            let busy = Word(closed.0 | (3 << REOPENS_SHIFT) | (5 << ISSUED_SHIFT));
            assert!(busy.is_closed_in(g), "other fields do not matter");
        }
    }
}
