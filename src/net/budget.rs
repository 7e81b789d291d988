//! The byte budget that response bodies kept in memory share, across every
//! exchange a process has in flight (a worker's checks): one budget per
//! worker, not a limit per check, so that checks in flight × bytes kept
//! can never exceed what the operator set.
//!
//! Each exchange keeps its first `floor` bytes without asking (the budget
//! sets `floor` × exchanges in flight aside), so a small honest body never
//! fails because large ones hold the rest. Beyond the floor, an exchange
//! takes one permit of a shared semaphore per byte of buffer capacity as
//! the body grows, and fails at once when none are left: waiting would let
//! hostile bodies hold honest checks to their deadline.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest floor an exchange keeps without asking.
const MAX_FLOOR: usize = 64 << 10;

/// A body that cannot get budget for more bytes (a check fails on it as an
/// assertion: its body could not be checked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("body not checked: the worker's body budget ({total} bytes, worker.body_budget) is in use by other checks")]
pub struct BudgetRefused {
    pub total: u64,
}

/// Bytes that the kept bodies of all exchanges in flight may hold at once.
/// Cheap to clone: clones share the budget.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    shared: Arc<Semaphore>,
    /// Bytes every exchange keeps without asking.
    floor: usize,
    /// The whole budget, for the message.
    total: u64,
}

impl BodyBudget {
    /// `total` bytes shared by at most `in_flight` exchanges at once.
    pub fn new(total: u64, in_flight: usize) -> BodyBudget {
        let in_flight = in_flight.max(1);
        let bytes = usize::try_from(total).unwrap_or(usize::MAX);
        // Half the budget at most is set aside as floors.
        let floor = (bytes / in_flight / 2).min(MAX_FLOOR);
        let shared = (bytes - floor * in_flight).min(Semaphore::MAX_PERMITS);
        BodyBudget { shared: Arc::new(Semaphore::new(shared)), floor, total }
    }

    /// The permit for a buffer of `capacity` bytes (`None` within the
    /// floor), or the failure of a check that cannot get it.
    pub fn charge(&self, capacity: usize) -> Result<Option<OwnedSemaphorePermit>, BudgetRefused> {
        let Some(bytes) = capacity.checked_sub(self.floor).filter(|b| *b > 0) else {
            return Ok(None);
        };
        let refused = || BudgetRefused { total: self.total };
        let bytes = u32::try_from(bytes).map_err(|_| refused())?;
        self.shared.clone().try_acquire_many_owned(bytes).map(Some).map_err(|_| refused())
    }

    /// Shared bytes not held by any exchange (tests and diagnostics).
    pub fn available(&self) -> usize {
        self.shared.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_share_the_budget_and_keep_their_floor() {
        // 1 MiB for 4 exchanges: 64 KiB floors, 768 KiB shared.
        let budget = BodyBudget::new(1 << 20, 4);
        assert_eq!(budget.available(), 768 << 10);
        assert!(budget.charge(64 << 10).unwrap().is_none(), "within the floor");
        let big = budget.charge((64 << 10) + (700 << 10)).unwrap();
        assert_eq!(budget.available(), 68 << 10);
        let refused = budget.charge(1 << 20).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "body not checked: the worker's body budget (1048576 bytes, worker.body_budget) is in use by other checks"
        );
        // A small body still fits while the big one holds the rest.
        assert!(budget.charge(1000).unwrap().is_none());
        drop(big);
        assert_eq!(budget.available(), 768 << 10);
    }

    #[test]
    fn floors_take_at_most_half_the_budget() {
        let budget = BodyBudget::new(1 << 20, 256);
        assert_eq!(budget.available(), 512 << 10);
        assert!(budget.charge(2048).unwrap().is_none());
    }
}
