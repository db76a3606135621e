//! The cooperative budget: a task poll may do [`BUDGET`] socket operations; after that,
//! operations wake the task and return `Pending`, so a hot socket goes to the back of the
//! ready queue instead of monopolising a worker. The scheduler sets the budget around each
//! poll ([`reset`]); outside a task poll it is unlimited.

use std::cell::Cell;
use std::task::Context;

/// Socket operations one task poll may do before yielding.
pub(crate) const BUDGET: u32 = 128;

thread_local! {
    static BUDGET_LEFT: Cell<u32> = const { Cell::new(u32::MAX) };
    /// Bytes the stream operations moved since the last [`reset`].
    static MOVED: Cell<u64> = const { Cell::new(0) };
}

/// What the socket operations of one budget period (a task poll) did.
pub(crate) struct Spent {
    /// Operations that completed (out of a budget of [`BUDGET`]).
    pub(crate) ops: u32,
    /// Bytes that stream transfers among them moved.
    pub(crate) bytes: u64,
}

/// Gives the task about to be polled on this thread a fresh budget; `None` lifts it.
/// Returns what the period before spent, if it had a budget of [`BUDGET`].
#[inline]
pub(crate) fn reset(budget: Option<u32>) -> Spent {
    let left = BUDGET_LEFT.with(|b| b.replace(budget.unwrap_or(u32::MAX)));
    Spent { ops: BUDGET.saturating_sub(left), bytes: MOVED.with(|m| m.replace(0)) }
}

/// A stream transfer moved `n` bytes.
#[inline]
pub(crate) fn moved(n: usize) {
    MOVED.with(|m| m.set(m.get().wrapping_add(n as u64)));
}

/// True (after waking the task) when the poll's budget is spent.
#[inline]
pub(crate) fn exhausted(cx: &Context<'_>) -> bool {
    let empty = BUDGET_LEFT.with(|b| b.get() == 0);
    if empty {
        cx.waker().wake_by_ref();
    }
    empty
}

/// Whether the current poll spent its whole budget (its turn is over).
pub(crate) fn turn_ended() -> bool {
    BUDGET_LEFT.with(|b| b.get() == 0)
}

/// One operation completed.
#[inline]
pub(crate) fn spend() {
    BUDGET_LEFT.with(|b| {
        let left = b.get();
        if left != u32::MAX {
            b.set(left.saturating_sub(1));
        }
    });
}
