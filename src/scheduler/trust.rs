//! Revoked leases, shared by the coordinator and the dispatcher with no
//! message in between. A lease the coordinator is about to hand back (or
//! has lost) must stop being dispatched *before* the release reaches
//! PostgreSQL: once it is there, another member may claim the partition
//! and publish it. Orders through the command channel only take effect
//! when the dispatcher gets to them, which a long round (a slow broker)
//! can delay past the release; this [`Gate`] takes effect at once.
//!
//! The rule: a publish enters the gate (which checks the lease is not
//! revoked) and holds it until the broker has the message; a revocation
//! marks the lease, then waits until no publish is inside. So when
//! [`Gate::revoke`] returns, no publish of a revoked lease is in progress
//! and none can start. The pure part, which epochs are revoked, is
//! [`Revocations`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use super::clock::DbClock;

/// The newest revoked epoch of each partition. Epochs grow with every
/// claim, so revoking epoch `e` revokes every older claim too, and a later
/// claim (a higher epoch) of the same partition is trusted again.
#[derive(Debug, Default, Clone)]
pub struct Revocations {
    newest: HashMap<u32, i64>,
}

impl Revocations {
    /// No slot of `partition` may be published under `epoch` or older.
    pub fn revoke(&mut self, partition: u32, epoch: i64) {
        let newest = self.newest.entry(partition).or_insert(epoch);
        *newest = (*newest).max(epoch);
    }

    /// Whether a lease of `partition` at `epoch` may still be acted on.
    pub fn allows(&self, partition: u32, epoch: i64) -> bool {
        self.newest.get(&partition).is_none_or(|revoked| epoch > *revoked)
    }
}

/// Held while one publish is in progress (see [`Gate::enter`]).
pub struct Entered {
    /// Dropped when the publish is done: lets a waiting revocation through.
    _inside: OwnedRwLockReadGuard<()>,
}

/// [`Revocations`] shared between the coordinator (which revokes) and the
/// dispatcher (which checks before every publish). Cloning shares it.
///
/// It also carries the dispatch clock ([`DbClock`]): the coordinator
/// anchors it on every heartbeat and the dispatcher reads it, the other
/// thing the coordinator tells the dispatcher without a message.
#[derive(Clone, Default)]
pub struct Gate {
    clock: DbClock,
    revoked: Arc<Mutex<Revocations>>,
    /// Read-held by the publish in progress; the write side waits for it.
    publishing: Arc<RwLock<()>>,
}

impl Gate {
    /// A gate sharing `clock` (also read by the readiness probe).
    pub fn with_clock(clock: DbClock) -> Gate {
        Gate { clock, ..Gate::default() }
    }

    pub fn clock(&self) -> &DbClock {
        &self.clock
    }

    fn revocations(&self) -> MutexGuard<'_, Revocations> {
        // A panic elsewhere while holding this lock left a map that is
        // still whole (each update is one insert): keep using it.
        self.revoked.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `partition` at `epoch` may be dispatched (cheap, no wait).
    pub fn allows(&self, partition: u32, epoch: i64) -> bool {
        self.revocations().allows(partition, epoch)
    }

    /// Enters the gate for one publish of `partition` at `epoch`: `None`
    /// when that lease is revoked. Hold the result until the publish call
    /// has returned.
    pub async fn enter(&self, partition: u32, epoch: i64) -> Option<Entered> {
        let inside = self.publishing.clone().read_owned().await;
        // Checked after entering: a revocation either came first (and is
        // seen here) or waits in `revoke` until this publish is done.
        self.allows(partition, epoch).then_some(Entered { _inside: inside })
    }

    /// Revokes `leases` (partition, epoch) and returns once no publish of
    /// them is in progress. The dispatcher's publishes are bounded in time
    /// (`PUBLISH_LIMIT`), so this wait is too.
    pub async fn revoke(&self, leases: &[(u32, i64)]) {
        {
            let mut revoked = self.revocations();
            for (partition, epoch) in leases {
                revoked.revoke(*partition, *epoch);
            }
        }
        drop(self.publishing.write().await);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn revoking_an_epoch_revokes_it_and_older_claims_only() {
        let mut r = Revocations::default();
        assert!(r.allows(3, 7));
        r.revoke(3, 7);
        assert!(!r.allows(3, 7));
        assert!(!r.allows(3, 6), "an older claim of the partition is revoked too");
        assert!(r.allows(3, 8), "a later claim of the partition is trusted");
        assert!(r.allows(4, 7), "other partitions are untouched");
        // A late, older revocation does not lift a newer one.
        r.revoke(3, 5);
        assert!(!r.allows(3, 7));
    }

    #[tokio::test]
    async fn a_revoked_lease_cannot_enter() {
        let gate = Gate::default();
        assert!(gate.enter(1, 1).await.is_some());
        gate.revoke(&[(1, 1)]).await;
        assert!(gate.enter(1, 1).await.is_none());
        assert!(!gate.allows(1, 1));
        assert!(gate.enter(1, 2).await.is_some(), "a new claim publishes again");
        assert!(gate.enter(2, 1).await.is_some());
    }

    /// The ordering the release relies on: `revoke` does not return while a
    /// publish that entered before it is still in progress.
    #[tokio::test]
    async fn revoke_waits_for_the_publish_in_progress() {
        let gate = Gate::default();
        let inside = gate.enter(1, 1).await;
        assert!(inside.is_some());
        let revoking = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.revoke(&[(1, 1)]).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!revoking.is_finished(), "revoke returned while a publish was in progress");
        // Already marked: no new publish of the lease starts meanwhile.
        assert!(!gate.allows(1, 1));
        drop(inside);
        tokio::time::timeout(Duration::from_secs(5), revoking)
            .await
            .expect("revoke returns once the publish is done")
            .expect("revoke task");
    }
}
