//! The dispatch loop: publishes every due slot of every owned, trusted
//! partition, tracks publisher confirms, and moves each partition's
//! watermark past what the broker has confirmed.
//!
//! This task owns all schedules and never touches PostgreSQL: the
//! coordinator hands it partitions ([`Command`]), the writer persists the
//! watermarks and misses it produces. So a slow query never delays a slot.
//!
//! The bookkeeping (slots in flight, delivery tags, nacks and returns, the
//! watermark each partition may write) is the pure [`Ledger`]; this loop
//! feeds it what happens and carries out what it says. Watermark of a
//! partition = the oldest slot not yet confirmed, or, with nothing in
//! flight, the time up to which slots have been handed out.
//!
//! The slots a partition has due in one round, and those waiting for a
//! republish, go out in messages of at most `slots_per_message` slots
//! ([`packing`](super::packing)), routed to the partition's job queue.
//! So that a round has several slots to pack, a partition's round waits
//! until its oldest due slot is `scheduler.batch_linger` old (the loop
//! would otherwise wake for every slot and pack one at a time): slots are
//! published up to that much late. A partition of a 10,000 checks/s
//! cluster with 256 partitions has ~39 slots due a second: 200 ms packs
//! ~8 per message, where the 50 ms `tick` packed ~2 (measured in the
//! capacity bench, docs/performance.md). With `slots_per_message` = 1 each
//! slot is published as soon as it is due, as before.
//!
//! Revocations do not wait for a command: every publish passes the shared
//! [`Gate`], which the coordinator closes on a lease before it releases it
//! or gives it up, so nothing is published for a lease that PostgreSQL may
//! already have handed to another member.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::clock::DbClock;
use super::leases::Lease;
use super::ledger::{Confirm, Ledger, Miss, MissReason};
use super::packing::{self, Key};
use super::publisher::{ConfirmEvent, Endpoint, Publisher};
use super::schedule::{CheckRow, DueSlot, MissedRange, PartitionSchedule};
use super::trust::Gate;
use super::writer::Pending;
use crate::model::job::parse_message_id;
use crate::queue::{AmqpLink, QueueError};

/// Orders from the coordinator.
pub enum Command {
    /// A partition was claimed: dispatch it from its watermark.
    Acquire { lease: Lease, rows: Vec<CheckRow>, trusted_until: Instant },
    /// Leases renewed: trust them until `until`.
    Trust { held: Vec<(u32, i64)>, until: Instant },
    /// A lease is gone (taken over, fenced): stop at once, write nothing more.
    Lost { partition: u32, epoch: i64 },
    /// The partition's checks as they are now.
    Reload { partition: u32, epoch: i64, rows: Vec<CheckRow> },
    /// Hand back: stop, wait for confirms (bounded), reply with the final watermark.
    Release { partition: u32, epoch: i64, reply: oneshot::Sender<Option<i64>> },
}

/// How long a release waits for in-flight confirms before giving up (the
/// new owner then republishes those slots; duplicates are harmless).
const RELEASE_CONFIRM_WAIT: Duration = Duration::from_secs(2);
/// A publish the connection does not take within this is a dead connection.
const PUBLISH_LIMIT: Duration = Duration::from_secs(5);
/// Slots in publishes awaiting their confirm at most: past it, dispatch
/// waits (the slots stay due and are caught up), so a broker that stops
/// confirming cannot grow our memory without bound.
const MAX_IN_FLIGHT: usize = 20_000;
/// A confirm this late means the channel is no longer doing its job:
/// reconnect and republish what it never confirmed.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(30);
/// How often watermarks are handed to the writer.
const MARK_EVERY: Duration = Duration::from_millis(50);

pub struct Settings {
    pub endpoint: Endpoint,
    pub tick: Duration,
    pub catch_up: Duration,
}

/// A held partition's schedule and how long its lease is trusted; its
/// epoch and books are in the [`Ledger`] (the same partitions, always).
struct Owned {
    schedule: PartitionSchedule,
    trusted_until: Instant,
}

pub struct Dispatcher {
    settings: Settings,
    /// Most slots one message carries; 1 publishes the one-slot format of
    /// before (versions 1 and 2), for a rolling upgrade.
    slots_per_message: usize,
    /// How long a due slot may wait for others to share its message.
    linger: Duration,
    owned: HashMap<u32, Owned>,
    ledger: Ledger,
    /// Who waits for the final watermark of each partition being released.
    replies: HashMap<u32, oneshot::Sender<Option<i64>>>,
    publisher: Option<Publisher>,
    generation: u64,
    reconnect: Option<oneshot::Receiver<Result<Publisher, QueueError>>>,
    events_tx: mpsc::UnboundedSender<ConfirmEvent>,
    events: mpsc::UnboundedReceiver<ConfirmEvent>,
    commands: mpsc::Receiver<Command>,
    pending: Pending,
    /// Leases the coordinator revoked; entered around every publish.
    gate: Gate,
    link: AmqpLink,
    /// Cancelled when the dispatcher stops: ends a pending reconnect.
    stop: CancellationToken,
    /// Some in-flight slot waits for a (re)publish (after a disconnect).
    needs_republish: bool,
    due: Vec<DueSlot>,
    missed: Vec<MissedRange>,
    /// PostgreSQL's time (slots are shared wall-clock times, read on one
    /// clock); `None` from it halts dispatch (no heartbeat yet, or this
    /// host's clock is too far off).
    clock: DbClock,
}

impl Dispatcher {
    pub fn new(
        settings: Settings,
        commands: mpsc::Receiver<Command>,
        pending: Pending,
        gate: Gate,
        link: AmqpLink,
    ) -> Dispatcher {
        let (events_tx, events) = mpsc::unbounded_channel();
        let clock = gate.clock().clone();
        Dispatcher {
            settings,
            slots_per_message: 1,
            linger: Duration::ZERO,
            owned: HashMap::new(),
            ledger: Ledger::default(),
            replies: HashMap::new(),
            publisher: None,
            generation: 0,
            reconnect: None,
            events_tx,
            events,
            commands,
            pending,
            gate,
            link,
            stop: CancellationToken::new(),
            needs_republish: false,
            due: Vec::new(),
            missed: Vec::new(),
            clock,
        }
    }

    /// Packs up to `n` slots per message (job format 3) instead of one
    /// (the format of before, the default: what every worker reads).
    pub fn slots_per_message(mut self, n: usize) -> Dispatcher {
        self.slots_per_message = n.max(1);
        self
    }

    /// How long a due slot may wait for others of its partition to share
    /// its message (only with more than one slot per message).
    pub fn batch_linger(mut self, linger: Duration) -> Dispatcher {
        self.linger = linger;
        self
    }

    /// Runs until the coordinator drops its command sender (after it has
    /// released every partition on shutdown).
    pub async fn run(mut self) {
        self.start_reconnect();
        let mut last_marks = Instant::now();
        loop {
            // Halted: nothing is taken from the schedules, so the slots
            // due meanwhile stay due and are caught up (or recorded
            // missed) once the clock is trusted again.
            let dispatching = self.clock.dispatch_now();
            let now = dispatching.unwrap_or_else(|| self.clock.now_ms());
            if self.publisher.as_ref().is_some_and(|p| !p.connection().is_open()) {
                tracing::warn!("RabbitMQ connection closed; reconnecting");
                self.on_disconnect();
            }
            if let Some(published) = self.ledger.oldest_unconfirmed() {
                if published.elapsed() > CONFIRM_DEADLINE {
                    tracing::warn!(
                        "RabbitMQ has not confirmed a publish for {CONFIRM_DEADLINE:?}; reconnecting"
                    );
                    self.on_disconnect();
                }
            }
            if let Some(now) = dispatching.filter(|_| self.publisher.is_some()) {
                if self.needs_republish {
                    self.republish(now).await;
                }
                self.dispatch_due(now).await;
            }
            self.finish_releases();
            if last_marks.elapsed() >= MARK_EVERY {
                self.hand_marks_to_writer();
                last_marks = Instant::now();
            }
            let wake = self.next_wake(now);
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                Some(event) = self.events.recv() => {
                    self.on_event(event);
                    while let Ok(event) = self.events.try_recv() {
                        self.on_event(event);
                    }
                }
                result = wait_reconnect(&mut self.reconnect) => self.on_reconnected(result),
                _ = tokio::time::sleep(wake) => {}
            }
        }
        self.stop.cancel();
        self.hand_marks_to_writer();
        if let Some(publisher) = self.publisher.take() {
            publisher.close().await;
        }
        self.link.set(None);
    }

    /// How long a partition's oldest due slot waits for others to share
    /// its message (ms).
    fn linger_ms(&self) -> i64 {
        if self.slots_per_message > 1 {
            self.linger.as_millis().min(i64::MAX as u128) as i64
        } else {
            0
        }
    }

    fn next_wake(&self, now: i64) -> Duration {
        let mut wake = self.settings.tick;
        if self.publisher.is_some() && self.clock.dispatch_now().is_some() {
            let trusted_now = Instant::now();
            for (partition, owned) in &self.owned {
                if self.stopped(*partition) || owned.trusted_until <= trusted_now {
                    continue;
                }
                if let Some(next) = owned.schedule.next_due() {
                    let until = Duration::from_millis((next + self.linger_ms() - now).max(0) as u64);
                    wake = wake.min(until);
                }
            }
        }
        // Never spin: a millisecond granularity is plenty for slots in ms.
        wake.max(Duration::from_millis(1))
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Acquire { lease, rows, trusted_until } => {
                let now = self.clock.now_ms();
                let from = lease.watermark.unwrap_or(now);
                let schedule = PartitionSchedule::load(rows, from);
                tracing::debug!(
                    partition = lease.partition,
                    epoch = lease.epoch,
                    checks = schedule.len(),
                    behind_ms = now - from,
                    "dispatching partition"
                );
                // A release of an older claim still waiting is superseded:
                // its coordinator gets no watermark.
                self.replies.remove(&lease.partition);
                self.ledger.acquire(lease.partition, lease.epoch, from, lease.watermark);
                self.owned.insert(lease.partition, Owned { schedule, trusted_until });
                self.update_gauges();
            }
            Command::Trust { held, until } => {
                for (partition, epoch) in held {
                    if let Some(owned) = self.owned.get_mut(&partition) {
                        if self.ledger.holds(partition, epoch) {
                            owned.trusted_until = owned.trusted_until.max(until);
                        }
                    }
                }
            }
            Command::Lost { partition, epoch } => {
                if self.ledger.holds(partition, epoch) {
                    tracing::warn!(partition, epoch, "lease lost: partition no longer dispatched here");
                    self.owned.remove(&partition);
                    self.ledger.drop_partition(partition);
                    if let Some(reply) = self.replies.remove(&partition) {
                        let _ = reply.send(None);
                    }
                    self.pending.forget(partition);
                    self.update_gauges();
                }
            }
            Command::Reload { partition, epoch, rows } => {
                if let Some(owned) = self.owned.get_mut(&partition) {
                    if self.ledger.holds(partition, epoch) {
                        let summary = owned.schedule.reload(rows, self.clock.now_ms());
                        if summary != Default::default() {
                            tracing::debug!(partition, ?summary, "checks reloaded");
                        }
                        self.update_gauges();
                    }
                }
            }
            Command::Release { partition, epoch, reply } => {
                if self.ledger.holds(partition, epoch) {
                    self.ledger.start_release(partition, Instant::now() + RELEASE_CONFIRM_WAIT);
                    self.replies.insert(partition, reply);
                } else {
                    let _ = reply.send(None);
                }
            }
        }
    }

    /// Whether `partition` publishes nothing more: being handed back, or
    /// its lease revoked by the coordinator (the command may still be on
    /// its way).
    fn stopped(&self, partition: u32) -> bool {
        self.ledger.releasing(partition)
            || self.ledger.epoch(partition).is_none_or(|epoch| !self.gate.allows(partition, epoch))
    }

    /// Releases whose in-flight publishes are confirmed (or waited long enough).
    fn finish_releases(&mut self) {
        for (partition, watermark) in self.ledger.finish_releases(Instant::now()) {
            self.owned.remove(&partition);
            self.pending.forget(partition);
            if let Some(reply) = self.replies.remove(&partition) {
                let _ = reply.send(Some(watermark));
            }
        }
        self.update_gauges();
    }

    async fn dispatch_due(&mut self, now: i64) {
        let trusted_now = Instant::now();
        let partitions: Vec<u32> = self.owned.keys().copied().collect();
        for partition in partitions {
            if self.ledger.awaiting_confirm() >= MAX_IN_FLIGHT {
                return;
            }
            if self.stopped(partition) {
                continue;
            }
            let linger = self.linger_ms();
            let Some(owned) = self.owned.get_mut(&partition) else { continue };
            if owned.trusted_until <= trusted_now {
                continue;
            }
            // Due, but not long enough: a later round packs more. (With
            // nothing due, the round still runs: it moves the watermark.)
            if owned.schedule.next_due().is_some_and(|next| next <= now && next > now - linger) {
                continue;
            }
            self.due.clear();
            self.missed.clear();
            let catch_up = self.settings.catch_up.as_millis() as i64;
            owned.schedule.take_due(now, catch_up, &mut self.due, &mut self.missed);
            self.ledger.hand_out(partition, now, self.due.iter().map(|d| (d.slot, d.check_id)));
            if !self.missed.is_empty() {
                let count: i64 = self.missed.iter().map(|m| m.count).sum();
                metrics::counter!("sentryk8s_slots_missed_total", "reason" => "catch_up")
                    .increment(count as u64);
                self.pending.missed(self.missed.drain(..).map(|m| (m, MissReason::CatchUp)));
            }
            let messages = packing::pack(
                self.due.iter().map(|d| (partition, (d.slot, d.check_id))),
                self.slots_per_message,
            );
            for (partition, keys) in messages {
                if !self.publish(partition, keys).await {
                    break;
                }
            }
            if self.publisher.is_none() {
                return;
            }
        }
    }

    /// Publishes what waits for a (re)publish: slots whose channel died
    /// before the broker confirmed them, and slots just handed out.
    async fn republish(&mut self, now: i64) {
        let trusted_now = Instant::now();
        let mut todo: Vec<(u32, Key)> = Vec::new();
        self.needs_republish = false;
        for (partition, owned) in &self.owned {
            if owned.trusted_until <= trusted_now || self.stopped(*partition) {
                // Picked up once the lease is proven again; a released or
                // lost partition's new owner resumes from its watermark.
                self.needs_republish |= self.ledger.has_unsent(*partition);
                continue;
            }
            todo.extend(self.ledger.unsent(*partition).map(|key| (*partition, key)));
        }
        let catch_up = self.settings.catch_up.as_millis() as i64;
        let mut misses = Vec::new();
        todo.retain(|(partition, (slot, check_id))| {
            let too_late = self
                .owned
                .get(partition)
                .is_none_or(|o| o.schedule.too_late(*check_id, *slot, now, catch_up));
            if too_late {
                misses.push(self.ledger.give_up(*partition, *slot, *check_id));
            }
            !too_late
        });
        self.record_misses(&misses);
        for (partition, keys) in packing::pack(todo, self.slots_per_message) {
            if !self.publish(partition, keys).await {
                return;
            }
        }
    }

    /// Publishes one message of `keys` (slot, check) of `partition`, all
    /// recorded in the ledger as unsent. Returns false when the connection
    /// is gone.
    ///
    /// Trust is judged here, per publish, not once per round: a round can
    /// take long (a slow broker), and a lease must not be acted on a moment
    /// past its trust deadline. What is not published stays unsent.
    ///
    /// The publish happens inside the [`Gate`]: a revocation either comes
    /// first and stops it, or waits until the broker has the message.
    async fn publish(&mut self, partition: u32, keys: Vec<Key>) -> bool {
        let Some(epoch) = self.ledger.epoch(partition) else { return true };
        let gate = self.gate.clone();
        let entered = gate.enter(partition, epoch).await;
        let Some(owned) = self.owned.get(&partition) else { return true };
        if entered.is_none()
            || owned.trusted_until <= Instant::now()
            || self.ledger.releasing(partition)
            || self.ledger.awaiting_confirm() >= MAX_IN_FLIGHT
        {
            self.needs_republish = true;
            return true;
        }
        let (message, gone) = packing::build(&owned.schedule, &keys, self.slots_per_message);
        // Checks deleted since: nothing to run, nothing to record.
        for (slot, check_id) in gone {
            self.ledger.forget(partition, slot, check_id);
        }
        let Some(message) = message else { return true };
        let Some(publisher) = self.publisher.as_mut() else { return false };
        let routing_key = self.settings.endpoint.topology.routing_key(partition);
        let published = publisher.publish(routing_key, &message.id, message.body, PUBLISH_LIMIT).await;
        drop(entered);
        match published {
            Ok(tag) => {
                let now = self.clock.now_ms();
                let lateness = metrics::histogram!("sentryk8s_dispatch_lateness_seconds");
                for (slot, _) in &message.keys {
                    lateness.record((now - slot).max(0) as f64 / 1000.0);
                }
                let slots = message.keys.len();
                metrics::counter!("sentryk8s_slots_published_total").increment(slots as u64);
                metrics::counter!("sentryk8s_job_messages_published_total").increment(1);
                metrics::histogram!("sentryk8s_job_message_slots").record(slots as f64);
                self.ledger.sent(partition, message.keys, tag, Instant::now());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "publish failed; reconnecting to RabbitMQ");
                self.on_disconnect();
                false
            }
        }
    }

    fn on_event(&mut self, event: ConfirmEvent) {
        match event {
            ConfirmEvent::Ack { generation, tag, multiple } if generation == self.generation => {
                let misses = self.ledger.confirm(tag, multiple, Confirm::Ack);
                self.record_misses(&misses);
            }
            ConfirmEvent::Nack { generation, tag, multiple } if generation == self.generation => {
                let misses = self.ledger.confirm(tag, multiple, Confirm::Nack);
                self.record_misses(&misses);
            }
            ConfirmEvent::Returned { generation, message_id } if generation == self.generation => {
                if let Some((id, slot)) = message_id.as_deref().and_then(parse_message_id) {
                    self.ledger.returned(id, slot);
                }
            }
            ConfirmEvent::Lost { generation }
                if generation == self.generation && self.publisher.is_some() =>
            {
                tracing::warn!("RabbitMQ connection lost; reconnecting");
                self.on_disconnect();
            }
            _ => {}
        }
    }

    /// Counts and queues for the writer the slots the ledger settled as missed.
    fn record_misses(&self, misses: &[Miss]) {
        if misses.is_empty() {
            return;
        }
        for miss in misses {
            metrics::counter!("sentryk8s_slots_missed_total", "reason" => miss.reason.as_str()).increment(1);
        }
        self.pending.missed(misses.iter().map(|m| {
            (MissedRange { check_id: m.check_id, first: m.slot, last: m.slot, count: 1 }, m.reason)
        }));
    }

    /// The channel is gone: whatever it did not confirm waits for the next one.
    fn on_disconnect(&mut self) {
        if let Some(publisher) = self.publisher.take() {
            tokio::spawn(publisher.close());
        }
        self.link.set(None);
        self.ledger.channel_lost();
        self.needs_republish = true;
        self.start_reconnect();
    }

    fn start_reconnect(&mut self) {
        if self.reconnect.is_some() {
            return;
        }
        self.generation += 1;
        let (tx, rx) = oneshot::channel();
        let endpoint = self.settings.endpoint.clone();
        let generation = self.generation;
        let events = self.events_tx.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let _ = tx.send(Publisher::open(&endpoint, generation, events, &stop).await);
        });
        self.reconnect = Some(rx);
    }

    fn on_reconnected(&mut self, result: Result<Publisher, QueueError>) {
        self.reconnect = None;
        match result {
            Ok(publisher) if publisher.generation == self.generation => {
                tracing::info!("publishing to RabbitMQ");
                self.link.set(Some(publisher.connection()));
                self.publisher = Some(publisher);
            }
            // A publisher of a superseded attempt: close it and keep waiting
            // for the current one (which cannot exist yet: start it).
            Ok(stale) => {
                tokio::spawn(stale.close());
                self.start_reconnect();
            }
            // Only the dispatcher stopping ends a reconnect attempt.
            Err(QueueError::Interrupted) if self.stop.is_cancelled() => {}
            // The attempt's task died (a panic inside the AMQP library): a
            // dispatcher without a connection must never just sit there.
            Err(e) => {
                tracing::error!(error = %e, "RabbitMQ reconnect attempt failed; retrying");
                self.start_reconnect();
            }
        }
    }

    fn hand_marks_to_writer(&mut self) {
        for (partition, epoch, mark) in self.ledger.marks_to_write() {
            self.pending.watermark(partition, epoch, mark);
        }
    }

    fn update_gauges(&self) {
        let checks: usize = self.owned.values().map(|o| o.schedule.len()).sum();
        metrics::gauge!("sentryk8s_scheduler_checks").set(checks as f64);
        metrics::gauge!("sentryk8s_scheduler_owned_partitions").set(self.owned.len() as f64);
    }
}

/// Resolves when a pending reconnect finishes; never while none is pending.
async fn wait_reconnect(
    reconnect: &mut Option<oneshot::Receiver<Result<Publisher, QueueError>>>,
) -> Result<Publisher, QueueError> {
    match reconnect.as_mut() {
        Some(rx) => rx.await.unwrap_or_else(|_| {
            Err(QueueError::Connect {
                target: "RabbitMQ".into(),
                cause: "the reconnect task ended abruptly".into(),
            })
        }),
        None => std::future::pending().await,
    }
}
