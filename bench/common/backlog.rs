//! The workers' autoscaling signal, computed as the chart's HPA (through
//! prometheus-adapter) and KEDA's prometheus trigger compute it
//! (helm/sentryk8s/templates/_helpers.tpl, `sentryk8s.backlogQuery`):
//!
//! jobs = (ready + unacked messages of every job queue)
//!        × (Δ sentryk8s_slots_published_total / Δ sentryk8s_job_messages_published_total
//!           over the last 2 minutes, summed over the schedulers)
//!
//! A job message carries 1 to `scheduler.slots_per_message` due slots, so
//! the message count alone undercounts the work. The ratio is 1 when no
//! message was published in the window (PromQL's 0 / 0 and
//! `or vector(1)`), and capped at `slots_per_message`, as in the chart.
//! The queue figures come from RabbitMQ's own Prometheus endpoint, the
//! series the adapter rule sums; the counters from the schedulers' /metrics.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The PromQL `rate(…[2m])` window of the chart's query.
const WINDOW: Duration = Duration::from_secs(120);

/// One reading of the signal.
#[derive(Clone, Copy, Debug, Default)]
pub struct BacklogReading {
    /// Ready messages summed over the job queues (NaN when RabbitMQ shows none of them).
    pub ready: f64,
    /// Unacknowledged messages summed over the job queues (NaN likewise).
    pub unacked: f64,
    /// Measured slots per message over the window (1 without publishes).
    pub slots_per_message: f64,
    /// (ready + unacked) × slots_per_message: the jobs waiting or in flight.
    pub jobs: f64,
}

/// Reads the signal; keeps the counters' history for the 2-minute ratio.
pub struct JobBacklog {
    queues: Vec<String>,
    schedulers: Vec<SocketAddr>,
    cap: f64,
    /// (when, slots published, messages published), oldest first.
    history: VecDeque<(Instant, f64, f64)>,
}

impl JobBacklog {
    /// `queues`: the job queue names; `schedulers`: their ops addresses;
    /// `slots_per_message`: the configured most slots per message (the cap).
    pub fn new(queues: Vec<String>, schedulers: Vec<SocketAddr>, slots_per_message: u32) -> JobBacklog {
        JobBacklog { queues, schedulers, cap: f64::from(slots_per_message.max(1)), history: VecDeque::new() }
    }

    /// Scrapes RabbitMQ and the schedulers once (call it every second or so).
    pub async fn read(&mut self) -> BacklogReading {
        let (ready, unacked) =
            super::rabbitmq_queue_depths(&self.queues).await.unwrap_or((f64::NAN, f64::NAN));
        self.sample_counters().await;
        let slots_per_message = self.slots_per_message();
        BacklogReading { ready, unacked, slots_per_message, jobs: (ready + unacked) * slots_per_message }
    }

    /// Sums both counters over the schedulers; a scrape that fails skips the
    /// sample (a missing scheduler would look like a counter reset).
    async fn sample_counters(&mut self) {
        let (mut slots, mut messages) = (0.0, 0.0);
        for addr in &self.schedulers {
            let Some(text) = super::http_get(*addr, "/metrics").await else { return };
            slots += super::metric_sum(&text, "sentryk8s_slots_published_total");
            messages += super::metric_sum(&text, "sentryk8s_job_messages_published_total");
        }
        let now = Instant::now();
        self.history.push_back((now, slots, messages));
        // Keep the newest sample at least WINDOW old as the window's start.
        while self.history.len() > 2 && now.duration_since(self.history[1].0) >= WINDOW {
            self.history.pop_front();
        }
    }

    /// Δ slots / Δ messages over the window; 1 without publishes; capped.
    fn slots_per_message(&self) -> f64 {
        let (Some(first), Some(last)) = (self.history.front(), self.history.back()) else { return 1.0 };
        let messages = last.2 - first.2;
        let slots = last.1 - first.1;
        if messages <= 0.0 || slots < 0.0 {
            return 1.0;
        }
        let ratio = (slots / messages).min(self.cap);
        if ratio.is_finite() && ratio >= 1.0 {
            ratio
        } else {
            1.0
        }
    }
}
