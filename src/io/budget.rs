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
}

/// Gives the task about to be polled on this thread a fresh budget; `None` lifts it.
/// Returns what was left of the one before.
#[inline]
pub(crate) fn reset(budget: Option<u32>) -> u32 {
    BUDGET_LEFT.with(|b| b.replace(budget.unwrap_or(u32::MAX)))
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
