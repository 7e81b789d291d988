//! The lease loop: heartbeat, renew, rebalance (claim what should be ours,
//! hand back what should be someone else's), reload changed checks, and on
//! shutdown leave and hand everything back so survivors take over at once.
//!
//! All PostgreSQL work of the scheduler happens here (and in the writer),
//! through [`super::store`]; the dispatcher only receives [`Command`]s.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::assignment::{cluster_shards, desired_owner};
use super::clock::DbClock;
use super::dispatch::Command;
use super::housekeeping;
use super::identity::Identity;
use super::store::{self, CHECKS_CHANNEL, LEASES_CHANNEL};
use super::trust::Gate;
use super::writer::{self, Pending};
use crate::db::error_chain;
use crate::db::listen::ListenEvent;

/// How often the lease table is looked at for expired leases to take over.
/// Shorter than the renewal period so a dead member's partitions are
/// owned again within TTL + ~1 s, not TTL + a renewal period.
const REBALANCE_EVERY: Duration = Duration::from_secs(1);
/// How long a release may take before we give up and let the lease expire.
const RELEASE_WAIT: Duration = Duration::from_secs(5);
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);
/// Partitions whose checks are read in one query: bounds the memory a
/// load of a million checks needs at once.
const LOAD_CHUNK: usize = 16;

/// The scheduler's share of the configuration.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub lease_ttl: Duration,
    pub renew_interval: Duration,
    pub reload_interval: Duration,
    /// How long results, missed slots and notifications are kept.
    pub retention: housekeeping::Retention,
}

/// What connects the coordinator to the scheduler's other tasks.
pub struct Wiring {
    /// Orders to the dispatcher.
    pub dispatcher: mpsc::Sender<Command>,
    /// Revokes leases in the dispatcher at once, without waiting for it to
    /// read a command (shared with the dispatcher).
    pub gate: Gate,
    /// Partitions whose watermark fence failed (from the writer).
    pub fenced: mpsc::UnboundedReceiver<(u32, i64)>,
    /// Notifications from the LISTEN connection.
    pub listen: mpsc::Receiver<ListenEvent>,
    /// What the writer has yet to write (flushed before a release).
    pub pending: Pending,
}

pub struct Coordinator {
    pool: Pool,
    me: Identity,
    settings: SchedulerSettings,
    partitions: u32,
    dispatcher: mpsc::Sender<Command>,
    gate: Gate,
    fenced: mpsc::UnboundedReceiver<(u32, i64)>,
    listen: mpsc::Receiver<ListenEvent>,
    pending: Pending,
    /// Partition → epoch of every lease we hold.
    held: HashMap<u32, i64>,
    /// Partitions whose checks changed and must be reloaded.
    dirty: HashSet<u32>,
    /// Fingerprint of each held partition's checks when last loaded.
    loaded: HashMap<u32, String>,
    /// When our membership heartbeat last succeeded.
    last_heartbeat: Option<Instant>,
    clock: DbClock,
    /// Whether dispatch was halted for clock skew at the last heartbeat
    /// (to log its resumption).
    halted: bool,
}

impl Coordinator {
    pub fn new(
        pool: Pool,
        me: Identity,
        settings: SchedulerSettings,
        partitions: u32,
        wiring: Wiring,
    ) -> Coordinator {
        let clock = wiring.gate.clock().clone();
        Coordinator {
            pool,
            me,
            settings,
            partitions,
            dispatcher: wiring.dispatcher,
            gate: wiring.gate,
            fenced: wiring.fenced,
            listen: wiring.listen,
            pending: wiring.pending,
            held: HashMap::new(),
            dirty: HashSet::new(),
            loaded: HashMap::new(),
            last_heartbeat: None,
            clock,
            halted: false,
        }
    }

    /// Trust a lease until `started + TTL − margin`, measured on the
    /// monotonic clock from before the statement was sent: the database
    /// set its expiry later than that, so we stop believing first.
    fn trust_until(&self, started: Instant) -> Instant {
        let ttl = self.settings.lease_ttl;
        let margin = (ttl / 10).min(Duration::from_secs(1));
        started + ttl - margin
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(REBALANCE_EVERY.min(self.settings.renew_interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_renew = Instant::now();
        let mut next_reload = Instant::now() + self.settings.reload_interval;
        let mut next_housekeeping = Instant::now();
        loop {
            let mut rebalance = false;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => rebalance = true,
                Some(event) = self.listen.recv() => match event {
                    ListenEvent::Notify { channel, payload } if channel == CHECKS_CHANNEL => {
                        if let Ok(p) = payload.parse::<u32>() {
                            if self.held.contains_key(&p) {
                                self.dirty.insert(p);
                            }
                        }
                    }
                    ListenEvent::Notify { channel, .. } if channel == LEASES_CHANNEL => rebalance = true,
                    ListenEvent::Notify { .. } => {}
                    ListenEvent::Reconnected => {
                        // Notifications may have been lost meanwhile; the
                        // fingerprints find the partitions that changed
                        // without reading every check.
                        self.find_unnoticed_changes().await;
                        rebalance = true;
                    }
                },
                Some((partition, epoch)) = self.fenced.recv() => {
                    if self.held.get(&partition) == Some(&epoch) {
                        self.lose(partition, epoch, "watermark fence failed").await;
                    }
                }
            }
            if Instant::now() >= next_renew {
                next_renew = Instant::now() + self.settings.renew_interval;
                self.renew().await;
            }
            if rebalance {
                self.rebalance().await;
            }
            if Instant::now() >= next_reload {
                next_reload = Instant::now() + self.settings.reload_interval;
                self.find_unnoticed_changes().await;
            }
            if !self.dirty.is_empty() {
                self.reload().await;
            }
            if Instant::now() >= next_housekeeping {
                if let Some(epoch) = self.held.get(&0).copied() {
                    next_housekeeping = Instant::now() + HOUSEKEEPING_EVERY;
                    self.housekeeping(epoch).await;
                }
            }
        }
        self.leave().await;
    }

    async fn client(&self) -> Option<deadpool_postgres::Object> {
        match self.pool.get().await {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "PostgreSQL unavailable");
                None
            }
        }
    }

    /// Heartbeat and lease renewal. Failure changes nothing here: the
    /// dispatcher stops trusting the leases by itself when their time is up.
    async fn renew(&mut self) {
        let Some(client) = self.client().await else { return };
        let started = Instant::now();
        let before = wall_ms();
        match store::heartbeat(&**client, &self.me, self.settings.lease_ttl).await {
            Ok(db_now) => {
                self.last_heartbeat = Some(started);
                // PostgreSQL's now() is taken somewhere in the round trip:
                // its middle is the best guess, on both clocks.
                let mid = started + started.elapsed() / 2;
                let skew = self.clock.anchor(db_now, mid, (before + wall_ms()) / 2);
                self.watch_clock(-skew);
            }
            Err(e) => tracing::warn!(error = %error_chain(&e), "membership heartbeat failed"),
        }
        if self.held.is_empty() {
            return;
        }
        let held: Vec<(u32, i64)> = self.held.iter().map(|(p, e)| (*p, *e)).collect();
        match store::renew_leases(&**client, &self.me.member_id, &held, self.settings.lease_ttl).await {
            Ok(renewed) => {
                let renewed: HashSet<u32> = renewed.into_iter().collect();
                let kept: Vec<(u32, i64)> =
                    held.iter().filter(|(p, _)| renewed.contains(p)).copied().collect();
                let until = self.trust_until(started);
                let _ = self.dispatcher.send(Command::Trust { held: kept, until }).await;
                for (partition, epoch) in held {
                    if !renewed.contains(&partition) {
                        self.lose(partition, epoch, "lease taken over").await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %error_chain(&e), "lease renewal failed"),
        }
    }

    async fn lose(&mut self, partition: u32, epoch: i64, why: &str) {
        tracing::warn!(partition, epoch, why, "lease lost");
        self.held.remove(&partition);
        self.dirty.remove(&partition);
        self.loaded.remove(&partition);
        metrics::counter!("sentryk8s_lease_lost_total").increment(1);
        // Stops the dispatcher now, not when it reads the command below.
        self.gate.revoke(&[(partition, epoch)]).await;
        let _ = self.dispatcher.send(Command::Lost { partition, epoch }).await;
        self.report_owned();
    }

    /// Slots are wall-clock times: a scheduler whose clock is off publishes
    /// every slot that much early or late (and workers judge staleness by
    /// their own clocks). PostgreSQL's clock is the reference every member
    /// shares; the offset is a metric, and a warning past a second.
    ///
    /// Dispatch itself reads PostgreSQL's time ([`DbClock`]), so a step of
    /// the local clock does not move slots; past `scheduler.max_clock_skew`
    /// the host is too broken to trust (workers, logs) and dispatch halts.
    fn watch_clock(&mut self, offset_ms: i64) {
        metrics::gauge!("sentryk8s_clock_offset_seconds").set(offset_ms as f64 / 1000.0);
        let halted = self.clock.too_skewed(offset_ms);
        metrics::gauge!("sentryk8s_dispatch_halted").set(if halted { 1.0 } else { 0.0 });
        if halted {
            tracing::error!(
                offset_ms,
                max_clock_skew = %humantime::format_duration(self.clock.max_skew()),
                "{}",
                super::clock::describe_skew(-offset_ms, self.clock.max_skew())
            );
        } else if self.halted {
            tracing::warn!(
                offset_ms,
                "this host's clock is back within scheduler.max_clock_skew: dispatch resumes"
            );
        } else if offset_ms.abs() > 1000 {
            tracing::warn!(
                offset_ms,
                "this host's clock differs from PostgreSQL's by more than a second: dispatch follows PostgreSQL's clock, but workers judge staleness by theirs; fix NTP"
            );
        }
        self.halted = halted;
    }

    fn is_member(&self) -> bool {
        self.last_heartbeat.map(|t| t.elapsed() < self.settings.lease_ttl).unwrap_or(false)
    }

    /// Claims the partitions that should be ours and are free; hands back
    /// the ones that should be another live member's.
    async fn rebalance(&mut self) {
        if !self.is_member() {
            // Until our own heartbeat is in, our view of who is live would
            // leave us out and we would give everything away.
            return;
        }
        let Some(client) = self.client().await else { return };
        let view = async {
            let members = store::live_members(&**client).await?;
            let leases = store::lease_table(&**client).await?;
            Ok::<_, tokio_postgres::Error>((members, leases))
        };
        let (members, table) = match view.await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot read membership and leases");
                return;
            }
        };
        if !members.iter().any(|m| m.id == self.me.member_id) {
            return;
        }
        let me = self.me.member_id.as_str();
        let shards = cluster_shards(&members);
        let mut to_claim = Vec::new();
        let mut to_release = Vec::new();
        for lease in table.iter().filter(|l| l.partition < self.partitions) {
            let desired = desired_owner(lease.partition, &members, shards);
            let held = self.held.contains_key(&lease.partition);
            if desired == Some(me) && !held {
                let free = lease.owner.is_none() || !lease.live || lease.owner.as_deref() == Some(me);
                if free {
                    to_claim.push(lease.partition);
                }
            } else if held && desired.is_some() && desired != Some(me) {
                to_release.push(lease.partition);
            }
        }
        drop(client);
        if !to_release.is_empty() {
            self.release(&to_release).await;
        }
        if !to_claim.is_empty() {
            self.claim(&to_claim).await;
        }
    }

    async fn claim(&mut self, partitions: &[u32]) {
        let Some(client) = self.client().await else { return };
        let started = Instant::now();
        let claimed =
            match store::claim_leases(&**client, &self.me.member_id, partitions, self.settings.lease_ttl)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "claim failed");
                    return;
                }
            };
        if claimed.is_empty() {
            return;
        }
        let trusted_until = self.trust_until(started);
        tracing::info!(
            count = claimed.len(),
            partitions = %compact(claimed.iter().map(|l| l.partition)),
            "leases acquired"
        );
        for chunk in claimed.chunks(LOAD_CHUNK) {
            let ids: Vec<u32> = chunk.iter().map(|l| l.partition).collect();
            let load_started = Instant::now();
            let loaded = async {
                let fingerprints = store::check_fingerprints(&**client, &ids).await?;
                let rows = store::load_checks(&**client, &ids).await?;
                Ok::<_, tokio_postgres::Error>((fingerprints, rows))
            };
            let (mut fingerprints, mut rows) = match loaded.await {
                Ok(loaded) => loaded,
                Err(e) => {
                    // Holding a lease we cannot dispatch would stall these
                    // partitions for a TTL: give them straight back.
                    tracing::warn!(error = %error_chain(&e), "cannot load checks of claimed partitions; releasing");
                    let marks: Vec<(u32, i64, Option<i64>)> =
                        chunk.iter().map(|l| (l.partition, l.epoch, None)).collect();
                    let _ = store::release_leases(&**client, &self.me.member_id, &marks).await;
                    continue;
                }
            };
            metrics::histogram!("sentryk8s_partition_load_seconds")
                .record(load_started.elapsed().as_secs_f64());
            for lease in chunk.iter().copied() {
                let rows = rows.remove(&lease.partition).unwrap_or_default();
                self.held.insert(lease.partition, lease.epoch);
                self.loaded
                    .insert(lease.partition, fingerprints.remove(&lease.partition).unwrap_or_default());
                metrics::counter!("sentryk8s_lease_acquired_total").increment(1);
                tracing::debug!(partition = lease.partition, epoch = lease.epoch, "lease acquired");
                let _ = self.dispatcher.send(Command::Acquire { lease, rows, trusted_until }).await;
            }
        }
        self.report_owned();
    }

    /// Stops dispatching `partitions`, waits for their final watermarks and
    /// releases the leases with them.
    ///
    /// The leases are revoked in the dispatcher first, through the gate:
    /// when the release reaches PostgreSQL (and another member may claim),
    /// nothing of them is being published here nor will be, even if the
    /// dispatcher has not read its `Release` yet (a long round) and the
    /// wait for its watermarks timed out.
    async fn release(&mut self, partitions: &[u32]) {
        let leases: Vec<(u32, i64)> =
            partitions.iter().filter_map(|p| self.held.get(p).map(|epoch| (*p, *epoch))).collect();
        self.gate.revoke(&leases).await;
        let mut replies = Vec::new();
        for (partition, epoch) in leases {
            let (tx, rx) = oneshot::channel();
            // A dispatcher that is gone cannot answer: release with the
            // watermark last written rather than keep the lease.
            let _ = self.dispatcher.send(Command::Release { partition, epoch, reply: tx }).await;
            replies.push((partition, epoch, rx));
        }
        let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
        let mut marks: Vec<(u32, i64, Option<i64>)> = Vec::new();
        for (partition, epoch, rx) in replies {
            let watermark = tokio::time::timeout_at(deadline, rx).await.ok().and_then(|r| r.ok()).flatten();
            marks.push((partition, epoch, watermark));
            self.held.remove(&partition);
            self.dirty.remove(&partition);
            self.loaded.remove(&partition);
        }
        self.report_owned();
        if marks.is_empty() {
            return;
        }
        // The misses of these partitions' last moments go in before the
        // leases: once released, a new owner starts from the watermark.
        if let Err(e) = writer::flush_now(&self.pool, &self.me.member_id, &self.pending).await {
            tracing::warn!(error = %e, "cannot write pending missed-slot records before the release");
        }
        let Some(client) = self.client().await else { return };
        match store::release_leases(&**client, &self.me.member_id, &marks).await {
            Ok(released) => {
                tracing::info!(count = released.len(), partitions = %compact(released.into_iter()), "leases handed back")
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "release failed; the leases will expire instead")
            }
        }
    }

    async fn reload(&mut self) {
        let partitions: Vec<u32> = self.dirty.drain().filter(|p| self.held.contains_key(p)).collect();
        if partitions.is_empty() {
            return;
        }
        let Some(client) = self.client().await else {
            self.dirty.extend(partitions);
            return;
        };
        for chunk in partitions.chunks(LOAD_CHUNK) {
            let loaded = async {
                let fingerprints = store::check_fingerprints(&**client, chunk).await?;
                let rows = store::load_checks(&**client, chunk).await?;
                Ok::<_, tokio_postgres::Error>((fingerprints, rows))
            };
            match loaded.await {
                Ok((mut fingerprints, mut rows)) => {
                    for partition in chunk {
                        let Some(epoch) = self.held.get(partition).copied() else { continue };
                        let rows = rows.remove(partition).unwrap_or_default();
                        self.loaded.insert(*partition, fingerprints.remove(partition).unwrap_or_default());
                        let _ = self
                            .dispatcher
                            .send(Command::Reload { partition: *partition, epoch, rows })
                            .await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "cannot reload checks; will retry");
                    self.dirty.extend(chunk.iter().copied());
                }
            }
        }
    }

    /// The fallback for lost notifications: reload the held partitions whose
    /// checks no longer match what was loaded.
    async fn find_unnoticed_changes(&mut self) {
        let held: Vec<u32> = self.held.keys().copied().collect();
        if held.is_empty() {
            return;
        }
        let Some(client) = self.client().await else { return };
        match store::check_fingerprints(&**client, &held).await {
            Ok(now) => {
                for (partition, fingerprint) in now {
                    if self.loaded.get(&partition) != Some(&fingerprint) {
                        tracing::info!(partition, "checks changed without a notification; reloading");
                        self.dirty.insert(partition);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %error_chain(&e), "cannot compare partitions' checks"),
        }
    }

    async fn housekeeping(&self, epoch: i64) {
        let Some(client) = self.client().await else { return };
        if let Err(e) = housekeeping::run(&**client, &self.me.member_id, epoch, self.settings.retention).await
        {
            tracing::warn!(error = %error_chain(&e), "housekeeping failed");
        }
    }

    /// SIGTERM: leave the membership first (so survivors stop counting on
    /// us), then hand every partition back with its final watermark.
    async fn leave(&mut self) {
        if let Some(client) = self.client().await {
            if let Err(e) = store::leave(&**client, &self.me).await {
                tracing::warn!(error = %error_chain(&e), "cannot leave the membership");
            }
        }
        let held: Vec<u32> = self.held.keys().copied().collect();
        self.release(&held).await;
        tracing::info!("scheduler left; partitions handed back");
    }

    fn report_owned(&self) {
        metrics::gauge!("sentryk8s_scheduler_leases").set(self.held.len() as f64);
    }
}

/// "0-3,7,9-10": partition lists for log lines.
fn compact(partitions: impl Iterator<Item = u32>) -> String {
    let mut sorted: Vec<u32> = partitions.collect();
    sorted.sort_unstable();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        out.push(if sorted[i] == start { start.to_string() } else { format!("{start}-{}", sorted[i]) });
        i += 1;
    }
    out.join(",")
}

/// The local wall clock in unix ms: only compared with PostgreSQL's, never
/// used to place slots.
fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    #[test]
    fn partition_lists_are_compact() {
        assert_eq!(super::compact([3, 0, 1, 2, 7, 9, 10].into_iter()), "0-3,7,9-10");
        assert_eq!(super::compact(std::iter::empty()), "");
    }
}
