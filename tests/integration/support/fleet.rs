//! A fleet of real `sentryk8s` processes on one test database and broker:
//! sharded schedulers (`HOSTNAME=sentryk8s-scheduler-N`) and workers, with
//! the views of the lease table and the slot arithmetic that tests need to
//! account for every slot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use sentryk8s::scheduler::slots;

use super::{free_port, Binary, TestBroker, TestDb};

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A check as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: i64,
    pub interval: i64,
    pub partition: u32,
}

pub struct Fleet {
    pub db: TestDb,
    pub broker: TestBroker,
    pub partitions: u32,
    pub shards: u32,
    pub ttl_ms: u64,
    pub renew_ms: u64,
    pub schedulers: BTreeMap<u32, Binary>,
    pub workers: BTreeMap<u32, Binary>,
    /// Output of processes that were stopped or replaced (for panic hunting).
    pub retired: Vec<String>,
    /// Database URL per scheduler ordinal when it differs (through a proxy).
    pub scheduler_db_url: HashMap<u32, String>,
    /// Database URL of the workers when it differs (through a proxy).
    pub worker_db_url: Option<String>,
    /// Extra environment for every process.
    pub env: Vec<(String, String)>,
}

impl Fleet {
    pub async fn new(partitions: u32, shards: u32, ttl_ms: u64, renew_ms: u64) -> Fleet {
        Fleet {
            db: TestDb::migrated(partitions).await,
            broker: TestBroker::new(),
            partitions,
            shards,
            ttl_ms,
            renew_ms,
            schedulers: BTreeMap::new(),
            workers: BTreeMap::new(),
            retired: Vec::new(),
            scheduler_db_url: HashMap::new(),
            worker_db_url: None,
            env: Vec::new(),
        }
    }

    /// Inserts checks with `SELECT name, interval_ms, spec FROM …` and returns them.
    pub async fn insert_checks(&self, select: &str) -> Vec<Check> {
        let client = self.db.client().await;
        let rows = client
            .query(&format!("INSERT INTO checks (name, interval_ms, spec) {select} RETURNING id, interval_ms, partition"), &[])
            .await
            .expect("insert checks");
        rows.iter()
            .map(|r| Check {
                id: r.get(0),
                interval: r.get::<_, i32>(1) as i64,
                partition: r.get::<_, i32>(2) as u32,
            })
            .collect()
    }

    pub fn scheduler_name(ordinal: u32) -> String {
        format!("sentryk8s-scheduler-{ordinal}")
    }

    fn base_env(&self, db_url: String) -> Vec<(String, String)> {
        let mut env = self.broker.env();
        env.push(("SENTRYK8S_DATABASE_URL".into(), db_url));
        env.push(("SENTRYK8S_DATABASE__CONNECT_TIMEOUT".into(), "1s".into()));
        env.push(("SENTRYK8S_AMQP__RECONNECT_MAX_BACKOFF".into(), "1s".into()));
        env.extend(self.env.iter().cloned());
        env
    }

    pub fn start_scheduler(&mut self, ordinal: u32) {
        let url = self.scheduler_db_url.get(&ordinal).cloned().unwrap_or_else(|| self.db.url.clone());
        let mut env = self.base_env(url);
        env.push(("HOSTNAME".into(), Fleet::scheduler_name(ordinal)));
        let listen = format!("127.0.0.1:{}", free_port());
        let shards = self.shards.to_string();
        let ttl = format!("{}ms", self.ttl_ms);
        let renew = format!("{}ms", self.renew_ms);
        let args = [
            "scheduler",
            "--shard-from-hostname",
            "--shards",
            &shards,
            "--lease-ttl",
            &ttl,
            "--renew-interval",
            &renew,
            "--listen",
            &listen,
        ];
        if let Some(old) = self.schedulers.insert(ordinal, Binary::spawn(&args, &env)) {
            self.retired.push(old.output());
        }
    }

    pub fn start_worker(&mut self, index: u32, concurrency: u32) {
        let url = self.worker_db_url.clone().unwrap_or_else(|| self.db.url.clone());
        let mut env = self.base_env(url);
        env.push(("HOSTNAME".into(), format!("sentryk8s-worker-{index}")));
        env.push(("SENTRYK8S_WORKER__BATCH_MAX_DELAY".into(), "20ms".into()));
        let listen = format!("127.0.0.1:{}", free_port());
        let concurrency = concurrency.to_string();
        let args = ["worker", "--concurrency", &concurrency, "--listen", &listen];
        if let Some(old) = self.workers.insert(index, Binary::spawn(&args, &env)) {
            self.retired.push(old.output());
        }
    }

    /// (partition, owner) for every partition whose lease is live.
    pub async fn owners(&self) -> HashMap<u32, String> {
        let client = self.db.client().await;
        client
            .query("SELECT partition, owner FROM partition_leases WHERE owner IS NOT NULL AND expires_at > now()", &[])
            .await
            .map(|rows| rows.iter().map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, String>(1))).collect())
            .unwrap_or_default()
    }

    async fn wait_owners(
        &self,
        limit: Duration,
        done: impl Fn(&HashMap<u32, String>) -> bool,
    ) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if done(&self.owners().await) {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits until every partition is live-owned by one of `members`; returns how long it took.
    pub async fn wait_owned_by(&self, members: &[u32], limit: Duration) -> Option<Duration> {
        let names: HashSet<String> = members.iter().map(|o| Fleet::scheduler_name(*o)).collect();
        let partitions = self.partitions as usize;
        self.wait_owners(limit, |o| o.len() == partitions && o.values().all(|n| names.contains(n))).await
    }

    /// Waits until every partition is owned by its preferred shard (p mod shards).
    pub async fn wait_converged(&self, limit: Duration) -> Option<Duration> {
        let (partitions, shards) = (self.partitions, self.shards);
        self.wait_owners(limit, |o| {
            (0..partitions).all(|p| o.get(&p) == Some(&Fleet::scheduler_name(p % shards)))
        })
        .await
    }

    /// Waits until the partitions preferred by `ordinal` (p mod shards) are owned by it.
    pub async fn wait_preferred(&self, ordinal: u32, limit: Duration) -> Option<Duration> {
        let (partitions, shards) = (self.partitions, self.shards);
        let name = Fleet::scheduler_name(ordinal);
        self.wait_owners(limit, |o| {
            (0..partitions).filter(|p| p % shards == ordinal).all(|p| o.get(&p) == Some(&name))
        })
        .await
    }

    /// Missed slots recorded in the history: check → slot → reason.
    pub async fn missed(&self, checks: &[Check]) -> HashMap<i64, HashMap<i64, String>> {
        let client = self.db.client().await;
        let rows = client
            .query(
                "SELECT check_id, (extract(epoch FROM first_slot) * 1000)::bigint,
                        (extract(epoch FROM last_slot) * 1000)::bigint, reason FROM missed_slots",
                &[],
            )
            .await
            .expect("missed slots");
        let intervals: HashMap<i64, i64> = checks.iter().map(|c| (c.id, c.interval)).collect();
        let mut out: HashMap<i64, HashMap<i64, String>> = HashMap::new();
        for r in rows {
            let (id, first, last, reason): (i64, i64, i64, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let step = intervals.get(&id).copied().unwrap_or(1000);
            let mut s = first;
            while s <= last {
                out.entry(id).or_default().insert(s, reason.clone());
                s += step;
            }
        }
        out
    }

    /// SIGTERM to every process; their exit statuses.
    pub async fn stop_all(&mut self) -> Vec<(String, Option<i32>)> {
        for p in self.schedulers.values().chain(self.workers.values()) {
            p.terminate();
        }
        let mut out = Vec::new();
        for (name, p) in self
            .schedulers
            .iter_mut()
            .map(|(o, p)| (Fleet::scheduler_name(*o), p))
            .chain(self.workers.iter_mut().map(|(i, p)| (format!("sentryk8s-worker-{i}"), p)))
        {
            let status = p.wait_exit(Duration::from_secs(30)).await;
            out.push((name, status.and_then(|s| s.code())));
        }
        out
    }

    /// Every output, live and retired.
    pub fn all_output(&self) -> String {
        let mut all = self.retired.join("\n");
        for p in self.schedulers.values().chain(self.workers.values()) {
            all.push('\n');
            all.push_str(&p.output());
        }
        all
    }
}

/// Every slot of every check with `from <= slot < to`.
pub fn expected_slots(checks: &[Check], from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for c in checks {
        let phase = slots::phase(c.id, c.interval);
        let mut s = slots::slot_at_or_after(from, c.interval, phase);
        while s < to {
            out.push((c.id, s));
            s += c.interval;
        }
    }
    out
}
