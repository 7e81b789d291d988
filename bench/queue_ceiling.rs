//! One quorum queue's ceiling: how many messages per second one RabbitMQ
//! quorum queue carries on this machine, used the way SentryK8s uses it,
//! and what each message costs the broker in CPU.
//!
//! Each step declares a fresh job queue exactly as the binary does
//! (`BenchQueue`: `x-queue-type quorum`, delivery limit, max length,
//! reject-publish, dead letters), then for a warm-up and a measured window:
//! - one publisher, the scheduler's own [`Publisher`]: persistent,
//!   mandatory messages with the scheduler's properties, on a confirm-mode
//!   channel, at most `SK_QC_WINDOW` unconfirmed in flight; as fast as the
//!   confirms allow, or paced at a fixed rate;
//! - one consumer, on its own connection, like a worker's: prefetch
//!   `SK_QC_PREFETCH` (default: the worker's, concurrency + batch size),
//!   manual acks, one `basic.ack(multiple)` for what arrived together (at
//!   most `SK_QC_ACK_EVERY` deliveries).
//!
//! Measured over the window: messages published and confirmed per second,
//! delivered and acknowledged per second, publish → confirm and
//! publish → delivery latency, and the CPU of beam.smp (utime + stime from
//! /proc), of this process and of the whole machine. beam.smp's CPU ÷
//! messages gives the broker's CPU per message. The broker is shared with
//! other engineers' tests: its CPU includes theirs, hence a quiet machine.
//!
//! Steps: for each body size of `SK_QC_SIZES` (300 B, a one-slot job; 4 KB,
//! about a 32-slot job message), full speed, then paced at `SK_QC_LOAD_PCT`
//! percent of the full-speed rate (the cost per message below saturation;
//! 0 skips it).
//!
//! ```sh
//! bench/run.sh queue-ceiling        # about 1.5 minutes after the build
//! ```
//!
//! Knobs: `SK_QC_SECONDS` (15, measured window per step), `SK_QC_WARMUP_S`
//! (2), `SK_QC_SIZES` ("300,4096"), `SK_QC_WINDOW` (1000),
//! `SK_QC_PREFETCH` (756), `SK_QC_ACK_EVERY` (100), `SK_QC_LOAD_PCT` (50).
//!
//! Writes bench/results/queue_ceiling.md.

#[path = "common/mod.rs"]
mod common;
#[path = "queue_ceiling/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqprs::channel::{BasicAckArguments, BasicConsumeArguments, BasicQosArguments, Channel};
use amqprs::connection::Connection;
use common::{env_list, env_or};
use sentryk8s::queue::AmqpTarget;
use sentryk8s::scheduler::publisher::{ConfirmEvent, Endpoint, Publisher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A publish that cannot be handed to the connection in this long fails.
const PUBLISH_LIMIT: Duration = Duration::from_secs(5);
/// After the window: how long confirms and deliveries may still trickle in.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);
const HEARTBEAT: Duration = Duration::from_secs(10);

struct Knobs {
    seconds: u64,
    warmup_s: u64,
    sizes: Vec<u64>,
    window: usize,
    prefetch: u16,
    ack_every: u64,
    load_pct: u64,
}

impl Knobs {
    fn from_env() -> Knobs {
        let worker = sentryk8s::config::Config::defaults().map(|c| c.worker).ok();
        let default_prefetch = worker
            .map(|w| {
                sentryk8s::worker::consumer::prefetch_per_consumer(
                    w.concurrency as usize,
                    w.batch_size as usize,
                    1,
                )
            })
            .unwrap_or(756);
        Knobs {
            seconds: env_or("SK_QC_SECONDS", 15).max(1),
            warmup_s: env_or("SK_QC_WARMUP_S", 2),
            sizes: env_list("SK_QC_SIZES", "300,4096").into_iter().map(|s| s.max(8)).collect(),
            window: env_or("SK_QC_WINDOW", 1000).max(1) as usize,
            prefetch: env_or("SK_QC_PREFETCH", default_prefetch as u64).clamp(1, u16::MAX as u64) as u16,
            ack_every: env_or("SK_QC_ACK_EVERY", 100).max(1),
            load_pct: env_or("SK_QC_LOAD_PCT", 50).min(100),
        }
    }
}

/// What the two sides have done so far, read by the harness at the
/// window's edges.
#[derive(Default)]
struct Counters {
    published: AtomicU64,
    confirmed: AtomicU64,
    nacked: AtomicU64,
    delivered: AtomicU64,
    acked: AtomicU64,
}

/// The measured window, shared by both sides: latency samples are kept for
/// messages published (confirm) or delivered (transit) inside it.
#[derive(Clone, Copy)]
struct Window {
    /// Time zero of the publish stamps carried in the bodies.
    origin: Instant,
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// Counters and CPU at one edge of the window.
struct Snapshot {
    at: Instant,
    published: u64,
    confirmed: u64,
    nacked: u64,
    delivered: u64,
    acked: u64,
    beam: std::collections::HashMap<u32, f64>,
    own_cpu: f64,
    machine: (f64, f64),
}

impl Snapshot {
    fn take(c: &Counters) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            published: c.published.load(Ordering::Relaxed),
            confirmed: c.confirmed.load(Ordering::Relaxed),
            nacked: c.nacked.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            beam: common::cpu_by_comm("beam.smp"),
            own_cpu: common::cpu_seconds(std::process::id()),
            machine: common::machine_jiffies(),
        }
    }
}

/// One step's figures.
struct StepResult {
    size: u64,
    /// Paced publish rate, None at full speed.
    rate: Option<f64>,
    confirmed_per_s: f64,
    acked_per_s: f64,
    nacked: u64,
    /// Published but not yet acknowledged at the window's end.
    in_flight_end: u64,
    confirm_ms: (f64, f64),
    transit_ms: (f64, f64),
    /// None when no beam.smp process is visible.
    beam_cores: Option<f64>,
    own_cores: f64,
    machine_cores: f64,
    errors: Vec<String>,
}

impl StepResult {
    /// The messages/s the queue carried both ways.
    fn carried(&self) -> f64 {
        self.confirmed_per_s.min(self.acked_per_s)
    }

    /// beam.smp CPU per message: a message's whole round trip (publish,
    /// confirm, delivery, ack), so per the mean of the two rates.
    fn beam_ms_per_message(&self) -> Option<f64> {
        let rate = (self.confirmed_per_s + self.acked_per_s) / 2.0;
        self.beam_cores.filter(|_| rate > 0.0).map(|c| c / rate * 1000.0)
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let knobs = Knobs::from_env();
    let set: Vec<String> =
        std::env::vars().filter(|(k, _)| k.starts_with("SK_QC_")).map(|(k, v)| format!("{k}={v}")).collect();
    let command =
        format!("{}{}bench/run.sh queue-ceiling", set.join(" "), if set.is_empty() { "" } else { " " });
    let header = common::report_header("One quorum queue's ceiling", &command);
    println!("{header}");
    let began = Instant::now();
    let target = match AmqpTarget::parse(&common::amqp_url()) {
        Ok(t) => t,
        Err(e) => panic!("the AMQP URL does not parse: {e}"),
    };
    if common::cpu_by_comm("beam.smp").is_empty() {
        println!("!! no beam.smp process visible in /proc: broker CPU is not measured");
    }

    let mut results = Vec::new();
    for &size in &knobs.sizes {
        let full = run_step(&knobs, &target, size, None).await;
        report::print_step(&full);
        let pace = (knobs.load_pct * full.carried() as u64 / 100) as f64;
        results.push(full);
        if knobs.load_pct > 0 && pace >= 1.0 {
            let paced = run_step(&knobs, &target, size, Some(pace)).await;
            report::print_step(&paced);
            results.push(paced);
        }
    }
    let text = report::report(&header, &knobs, &results, began.elapsed());
    common::write_result("queue_ceiling.md", &text);
    println!("\n{}", report::headline(&results));
}

/// One step on a fresh queue: warm-up, measured window, drain, delete.
async fn run_step(knobs: &Knobs, target: &AmqpTarget, size: u64, rate: Option<f64>) -> StepResult {
    let queue = common::BenchQueue::declare("sk-bench-qc").await;
    let counters = Arc::new(Counters::default());
    let origin = Instant::now();
    let start = origin + Duration::from_secs(knobs.warmup_s);
    let window = Window { origin, start, end: start + Duration::from_secs(knobs.seconds) };
    let stop_publishing = CancellationToken::new();
    let stop_consuming = CancellationToken::new();

    let consumer = tokio::spawn(consume(
        target.clone(),
        queue.topology.queue.clone(),
        (knobs.prefetch, knobs.ack_every),
        counters.clone(),
        window,
        stop_consuming.clone(),
    ));
    let endpoint = Endpoint {
        target: target.clone(),
        topology: queue.topology.clone(),
        app_id: "sentryk8s-bench-qc".into(),
        heartbeat: HEARTBEAT,
        max_backoff: Duration::from_secs(1),
    };
    let publisher = tokio::spawn(publish(
        endpoint,
        (size as usize, rate, knobs.window),
        counters.clone(),
        window,
        stop_publishing.clone(),
    ));

    tokio::time::sleep_until(window.start.into()).await;
    let before = Snapshot::take(&counters);
    tokio::time::sleep_until(window.end.into()).await;
    let after = Snapshot::take(&counters);

    stop_publishing.cancel();
    let mut errors = Vec::new();
    let confirm = joined(publisher.await, "publisher", &mut errors);
    // Let the consumer take what was confirmed before stopping it.
    let deadline = Instant::now() + DRAIN_LIMIT;
    while counters.acked.load(Ordering::Relaxed) < counters.confirmed.load(Ordering::Relaxed)
        && Instant::now() < deadline
        && !consumer.is_finished()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_consuming.cancel();
    let transit = joined(consumer.await, "consumer", &mut errors);
    queue.delete().await;

    let secs = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    let beam_cores = (!after.beam.is_empty()).then(|| common::cpu_delta(&before.beam, &after.beam) / secs);
    let (busy, total) = (after.machine.0 - before.machine.0, after.machine.1 - before.machine.1);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    StepResult {
        size,
        rate,
        confirmed_per_s: (after.confirmed - before.confirmed) as f64 / secs,
        acked_per_s: (after.acked - before.acked) as f64 / secs,
        nacked: after.nacked - before.nacked,
        in_flight_end: after.published.saturating_sub(after.acked),
        confirm_ms: p50_p99(confirm),
        transit_ms: p50_p99(transit),
        beam_cores,
        own_cores: (after.own_cpu - before.own_cpu) / secs,
        machine_cores: if total > 0.0 { busy / total * cores } else { 0.0 },
        errors: {
            if after.delivered < after.acked {
                errors.push("more acks than deliveries (bench bug)".into());
            }
            errors
        },
    }
}

/// A side's latency samples, or its failure added to `errors`.
fn joined(
    outcome: Result<Result<Vec<f64>, String>, tokio::task::JoinError>,
    side: &str,
    errors: &mut Vec<String>,
) -> Vec<f64> {
    match outcome {
        Ok(Ok(samples)) => samples,
        Ok(Err(e)) => {
            errors.push(format!("{side}: {e}"));
            Vec::new()
        }
        Err(e) => {
            errors.push(format!("{side} task: {e}"));
            Vec::new()
        }
    }
}

fn p50_p99(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (common::percentile(&samples, 0.50), common::percentile(&samples, 0.99))
}

// ------------------------------------------------------------ publisher

/// Publishes `size`-byte bodies until `stop`, then waits for the last
/// confirms. Returns publish → confirm latencies (ms) of the window.
async fn publish(
    endpoint: Endpoint,
    (size, rate, window_size): (usize, Option<f64>, usize),
    counters: Arc<Counters>,
    window: Window,
    stop: CancellationToken,
) -> Result<Vec<f64>, String> {
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut publisher = Publisher::open(&endpoint, 1, events_tx, &stop).await.map_err(|e| e.to_string())?;
    let routing_key = endpoint.topology.routing_key(0).to_string();
    let mut side = Confirms { events, outstanding: BTreeMap::new(), latencies: Vec::new(), counters, window };
    let outcome = side.run(&mut publisher, &routing_key, (size, rate, window_size), &stop).await;
    publisher.close().await;
    outcome.map(|()| side.latencies)
}

/// The publisher's bookkeeping: unconfirmed tags and when each was sent.
struct Confirms {
    events: mpsc::UnboundedReceiver<ConfirmEvent>,
    outstanding: BTreeMap<u64, Instant>,
    latencies: Vec<f64>,
    counters: Arc<Counters>,
    window: Window,
}

impl Confirms {
    async fn run(
        &mut self,
        publisher: &mut Publisher,
        routing_key: &str,
        (size, rate, window_size): (usize, Option<f64>, usize),
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let paced_from = Instant::now();
        let mut sent: u64 = 0;
        loop {
            while let Ok(event) = self.events.try_recv() {
                self.settle(event)?;
            }
            if stop.is_cancelled() {
                break;
            }
            let full = self.outstanding.len() >= window_size;
            // Paced: the next message is due at sent ÷ rate.
            let due = rate
                .map(|r| paced_from + Duration::from_secs_f64(sent as f64 / r))
                .filter(|t| *t > Instant::now());
            if full || due.is_some() {
                let wait_due = async {
                    match due {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    event = self.events.recv() => match event {
                        Some(event) => self.settle(event)?,
                        None => return Err("confirm events ended".into()),
                    },
                    _ = wait_due, if !full => {}
                }
                continue;
            }
            let now = Instant::now();
            let body = stamped_body(size, now.duration_since(self.window.origin));
            let tag = publisher
                .publish(routing_key, &format!("qc-{sent}"), body, PUBLISH_LIMIT)
                .await
                .map_err(|e| e.to_string())?;
            self.outstanding.insert(tag, now);
            sent += 1;
            self.counters.published.fetch_add(1, Ordering::Relaxed);
        }
        // The window is over; count what is still confirmed, within a bound.
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        while !self.outstanding.is_empty() {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => self.settle(event)?,
                Ok(None) => return Err("confirm events ended".into()),
                Err(_) => return Err(format!("{} publishes never confirmed", self.outstanding.len())),
            }
        }
        Ok(())
    }

    fn settle(&mut self, event: ConfirmEvent) -> Result<(), String> {
        let (tag, multiple, acked) = match event {
            ConfirmEvent::Ack { tag, multiple, .. } => (tag, multiple, true),
            ConfirmEvent::Nack { tag, multiple, .. } => (tag, multiple, false),
            ConfirmEvent::Returned { .. } => return Err("a message was returned: no queue bound".into()),
            ConfirmEvent::Lost { .. } => return Err("the publishing channel was lost".into()),
        };
        let settled: Vec<(u64, Instant)> = if multiple {
            let rest = self.outstanding.split_off(&tag.saturating_add(1));
            std::mem::replace(&mut self.outstanding, rest).into_iter().collect()
        } else {
            self.outstanding.remove(&tag).map(|at| vec![(tag, at)]).unwrap_or_default()
        };
        let now = Instant::now();
        for (_, at) in &settled {
            if acked && self.window.contains(*at) {
                self.latencies.push(now.duration_since(*at).as_secs_f64() * 1000.0);
            }
        }
        let counter = if acked { &self.counters.confirmed } else { &self.counters.nacked };
        counter.fetch_add(settled.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// `size` bytes starting with the publish time (µs since the window's
/// origin), so the consumer can time the transit.
fn stamped_body(size: usize, since_origin: Duration) -> Vec<u8> {
    let mut body = vec![b'x'; size.max(8)];
    body[..8].copy_from_slice(&(since_origin.as_micros() as u64).to_le_bytes());
    body
}

// ------------------------------------------------------------- consumer

/// Consumes until `stop`, acknowledging with `basic.ack(multiple)`.
/// Returns publish → delivery latencies (ms) of the window.
async fn consume(
    target: AmqpTarget,
    queue: String,
    (prefetch, ack_every): (u16, u64),
    counters: Arc<Counters>,
    window: Window,
    stop: CancellationToken,
) -> Result<Vec<f64>, String> {
    let connection = sentryk8s::queue::connect(&target, "sentryk8s-bench-qc consumer", HEARTBEAT)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = consume_on(&connection, &queue, (prefetch, ack_every), &counters, window, &stop).await;
    let _ = connection.close().await;
    outcome
}

async fn consume_on(
    connection: &Connection,
    queue: &str,
    (prefetch, ack_every): (u16, u64),
    counters: &Counters,
    window: Window,
    stop: &CancellationToken,
) -> Result<Vec<f64>, String> {
    let channel = connection.open_channel(None).await.map_err(|e| e.to_string())?;
    // Per consumer, as the worker sets it (quorum queues refuse a global one).
    channel.basic_qos(BasicQosArguments::new(0, prefetch, false)).await.map_err(|e| e.to_string())?;
    let args = BasicConsumeArguments::new(queue, "").manual_ack(true).finish();
    let (_tag, mut deliveries) = channel.basic_consume_rx(args).await.map_err(|e| e.to_string())?;
    let mut transit = Vec::new();
    let mut taken = Taken { last_tag: 0, unacked: 0 };
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            message = deliveries.recv() => message,
        };
        let Some(message) = message else {
            return Err("deliveries ended (consumer cancelled or channel closed)".into());
        };
        taken.take(message, counters, window, &mut transit);
        // What already arrived is acknowledged together, like a worker's
        // batch: one multiple ack per `ack_every` deliveries at most.
        while taken.unacked < ack_every {
            match deliveries.try_recv() {
                Ok(message) => taken.take(message, counters, window, &mut transit),
                Err(_) => break,
            }
        }
        taken.ack(&channel, counters).await?;
    }
    let _ = channel.close().await;
    Ok(transit)
}

/// Deliveries taken and not yet acknowledged.
struct Taken {
    last_tag: u64,
    unacked: u64,
}

impl Taken {
    fn take(
        &mut self,
        message: amqprs::channel::ConsumerMessage,
        counters: &Counters,
        window: Window,
        transit: &mut Vec<f64>,
    ) {
        let Some(deliver) = message.deliver else { return };
        self.last_tag = deliver.delivery_tag();
        self.unacked += 1;
        counters.delivered.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let stamp = message.content.as_deref().and_then(|c| c.get(..8)).and_then(|s| s.try_into().ok());
        if let (true, Some(stamp)) = (window.contains(now), stamp) {
            let sent = window.origin + Duration::from_micros(u64::from_le_bytes(stamp));
            transit.push(now.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        }
    }

    async fn ack(&mut self, channel: &Channel, counters: &Counters) -> Result<(), String> {
        if self.unacked == 0 {
            return Ok(());
        }
        channel.basic_ack(BasicAckArguments::new(self.last_tag, true)).await.map_err(|e| e.to_string())?;
        counters.acked.fetch_add(self.unacked, Ordering::Relaxed);
        self.unacked = 0;
        Ok(())
    }
}
