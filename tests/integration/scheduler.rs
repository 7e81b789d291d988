//! The scheduler, as real processes against PostgreSQL and RabbitMQ. Slots
//! are counted by consuming the job queue directly: each message's
//! (check_id, slot) is its identity.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sentryk8s::scheduler::slots;

use crate::support::fleet::{expected_slots, now_ms, Check, Fleet};
use crate::support::jobs::{JobCollector, Received};
use crate::support::{Binary, TcpProxy};

const PARTITIONS: u32 = 32;

/// A fleet without processes yet, `n` checks of 1–5 s intervals (never run:
/// there is no worker), and a collector counting every published job.
async fn setup(n: usize, shards: u32, ttl_ms: u64, renew_ms: u64) -> (Fleet, JobCollector, Vec<Check>) {
    let fleet = Fleet::new(PARTITIONS, shards, ttl_ms, renew_ms).await;
    let collector = JobCollector::start(&fleet.broker).await;
    let checks = fleet
        .insert_checks(&format!(
            "SELECT 'check-' || i, 1000 + (i % 5) * 1000, '{{\"url\":\"http://127.0.0.1:9/\",\"timeout_ms\":500}}'
               FROM generate_series(1, {n}) i"
        ))
        .await;
    (fleet, collector, checks)
}

fn counts(received: &[Received]) -> HashMap<(i64, i64), usize> {
    let mut map = HashMap::new();
    for r in received {
        *map.entry((r.check_id, r.slot)).or_insert(0) += 1;
    }
    map
}

/// Samples lease ownership until `stop` and records every sample in which
/// some partition was not owned by exactly one live member.
fn sample_ownership(
    db_url: String,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let client = crate::support::db::connect(&db_url).await;
        let mut samples = 0;
        let mut problems = Vec::new();
        while !stop.is_cancelled() {
            let rows = client
                .query(
                    "SELECT l.partition, l.owner, l.expires_at > now() AS live,
                            EXISTS (SELECT 1 FROM scheduler_members m WHERE m.member_id = l.owner AND m.expires_at > now())
                       FROM partition_leases l",
                    &[],
                )
                .await
                .unwrap();
            samples += 1;
            for r in rows {
                let (p, owner, live, member_live): (i32, Option<String>, Option<bool>, bool) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                if owner.is_none() || live != Some(true) || !member_live {
                    problems.push(format!(
                        "partition {p}: owner {owner:?} live {live:?} member live {member_live}"
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        (samples, problems)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_publish_every_slot_once() {
    let (mut fleet, collector, checks) = setup(3000, 3, 15_000, 5_000).await;
    for ordinal in 0..3 {
        fleet.start_scheduler(ordinal);
    }
    // Every partition ends up with its preferred shard.
    fleet
        .wait_converged(Duration::from_secs(20))
        .await
        .expect("every partition owned by its preferred shard");
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = sample_ownership(fleet.db.url.clone(), stop.clone());
    let from = now_ms() + 1000;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let to = now_ms() - 2000;
    stop.cancel();
    let (samples, problems) = sampler.await.unwrap();
    fleet.stop_all().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert!(samples > 100, "{samples} ownership samples");
    assert!(problems.is_empty(), "ownership problems: {:?}", &problems[..problems.len().min(10)]);
    let received = collector.snapshot();
    let seen = counts(&received);
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "{} slots published twice, e.g. {:?}",
        duplicates.len(),
        duplicates.first()
    );
    let expected = expected_slots(&checks, from, to);
    assert!(expected.len() > 50_000, "{} slots expected", expected.len());
    let missing: Vec<_> = expected.iter().filter(|k| !seen.contains_key(k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} slots never published, e.g. {:?}",
        missing.len(),
        expected.len(),
        missing.first()
    );
    // Every published slot is on its check's grid (no invented slots).
    let grid: HashMap<i64, (i64, i64)> =
        checks.iter().map(|c| (c.id, (c.interval, slots::phase(c.id, c.interval)))).collect();
    for r in &received {
        let (interval, phase) = grid[&r.check_id];
        assert_eq!((r.slot - phase).rem_euclid(interval), 0, "off-grid slot {r:?}");
    }
    let lateness: Vec<i64> =
        received.iter().filter(|r| r.slot >= from && r.slot < to).map(|r| r.at_ms - r.slot).collect();
    let mut sorted = lateness.clone();
    sorted.sort();
    let p99 = sorted[sorted.len() * 99 / 100];
    eprintln!("{} slots, p50 lateness {} ms, p99 {} ms", sorted.len(), sorted[sorted.len() / 2], p99);
    assert!(p99 < 1000, "p99 lateness {p99} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shard_is_taken_over_and_takes_its_partitions_back() {
    let ttl = 4000u64;
    let renew = 1000u64;
    let (mut fleet, collector, checks) = setup(600, 3, ttl, renew).await;
    for ordinal in 0..3 {
        fleet.start_scheduler(ordinal);
    }
    fleet.wait_converged(Duration::from_secs(20)).await.expect("all partitions owned");
    let from = now_ms();
    tokio::time::sleep(Duration::from_secs(8)).await;

    // kill -9: no release, its leases must expire first.
    let killed_at = now_ms();
    fleet.schedulers.get_mut(&1).unwrap().kill9();
    let takeover = fleet.wait_owned_by(&[0, 2], Duration::from_millis(ttl + 6000)).await.expect("taken over");
    assert!(takeover <= Duration::from_millis(ttl + 2000), "partitions owned again after {takeover:?}");
    let gap_ms = takeover.as_millis() as i64;
    tokio::time::sleep(Duration::from_secs(8)).await;

    // It comes back under the same name and gets its preferred partitions back.
    let returned_at = now_ms();
    fleet.start_scheduler(1);
    let back = fleet.wait_preferred(1, Duration::from_secs(15)).await.expect("preferred partitions back");
    assert!(back <= Duration::from_millis(2 * renew + 3000), "preferred partitions back after {back:?}");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let to = now_ms() - 2000;
    fleet.stop_all().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let received = collector.snapshot();
    let seen = counts(&received);
    let missed = fleet.missed(&checks).await;
    let interval_of: HashMap<i64, i64> = checks.iter().map(|c| (c.id, c.interval)).collect();
    let mut problems = Vec::new();
    for (id, slot) in expected_slots(&checks, from, to) {
        let n = seen.get(&(id, slot)).copied().unwrap_or(0);
        let was_missed = missed.get(&id).map(|s| s.contains_key(&slot)).unwrap_or(false);
        if n == 0 && !was_missed {
            problems.push(format!(
                "check {id} slot {slot} neither published nor counted missed ({} ms after the kill, {} ms after the return, {} ms before the end)",
                slot - killed_at,
                slot - returned_at,
                to - slot
            ));
        }
        if n > 1 && !(slot > killed_at - 1500 && slot <= killed_at) {
            problems.push(format!("check {id} slot {slot} published {n} times (kill at {killed_at})"));
        }
        if was_missed {
            if interval_of[&id] >= gap_ms + 1000 {
                problems.push(format!(
                    "check {id} (interval {}) missed a slot; takeover gap {gap_ms} ms",
                    interval_of[&id]
                ));
            }
            if slot < killed_at - 1000 || slot > killed_at + gap_ms + 2000 {
                problems.push(format!("check {id} slot {slot} missed outside the takeover window"));
            }
        }
        // The handback when the member returns loses and doubles nothing.
        if slot > returned_at && n != 1 {
            problems.push(format!("check {id} slot {slot} published {n} times around the handback"));
        }
    }
    // No check waits longer than max(interval, TTL + 2 s) between two published slots.
    let mut by_check: HashMap<i64, Vec<i64>> = HashMap::new();
    for r in &received {
        if r.slot >= from && r.slot < to {
            by_check.entry(r.check_id).or_default().push(r.slot);
        }
    }
    for (id, mut published) in by_check {
        published.sort();
        published.dedup();
        let limit = interval_of[&id].max(ttl as i64 + 2000) + 500;
        for pair in published.windows(2) {
            if pair[1] - pair[0] > limit {
                problems.push(format!(
                    "check {id} waited {} ms between slots (limit {limit}): {} → {} ms after the kill, partition {}, missed {:?}",
                    pair[1] - pair[0],
                    pair[0] - killed_at,
                    pair[1] - killed_at,
                    checks.iter().find(|c| c.id == id).map(|c| c.partition).unwrap_or(0),
                    missed.get(&id).map(|m| m.keys().map(|s| s - killed_at).collect::<Vec<_>>())
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems, e.g. {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    // The kill made some slots count as missed, visibly.
    let missed_total: usize = missed.values().map(|s| s.len()).sum();
    eprintln!("takeover {takeover:?}, back {back:?}, missed {missed_total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_partitions_over_at_once() {
    let (mut fleet, collector, checks) = setup(600, 3, 15_000, 5_000).await;
    for ordinal in 0..3 {
        fleet.start_scheduler(ordinal);
    }
    fleet.wait_converged(Duration::from_secs(20)).await.expect("all partitions owned");
    let from = now_ms();
    tokio::time::sleep(Duration::from_secs(5)).await;
    fleet.schedulers[&2].terminate();
    let takeover = fleet.wait_owned_by(&[0, 1], Duration::from_secs(10)).await.expect("taken over");
    assert!(takeover <= Duration::from_secs(2), "survivors own everything after {takeover:?}, not a TTL");
    let status = fleet.schedulers.get_mut(&2).unwrap().wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", fleet.schedulers[&2].output());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let to = now_ms() - 2000;
    fleet.stop_all().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let seen = counts(&collector.snapshot());
    let expected = expected_slots(&checks, from, to);
    let lost: Vec<_> = expected.iter().filter(|k| !seen.contains_key(k)).collect();
    let doubled: Vec<_> = expected.iter().filter(|k| seen.get(k).copied().unwrap_or(0) > 1).collect();
    assert!(lost.is_empty(), "{} slots lost in the handover, e.g. {:?}", lost.len(), lost.first());
    assert!(
        doubled.is_empty(),
        "{} slots doubled in the handover, e.g. {:?}",
        doubled.len(),
        doubled.first()
    );
    assert!(fleet.missed(&checks).await.is_empty(), "a clean handover misses nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_cut_off_from_postgres_never_dispatches_alongside_its_successor() {
    let ttl = 4000u64;
    let (mut fleet, collector, checks) = setup(600, 3, ttl, 1000).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut url = url::Url::parse(&fleet.db.url).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    fleet.scheduler_db_url.insert(0, url.to_string());
    for ordinal in 0..3 {
        fleet.start_scheduler(ordinal);
    }
    fleet.wait_converged(Duration::from_secs(20)).await.expect("all partitions owned");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let blocked_at = now_ms();
    proxy.block();
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.unblock();
    let unblocked_at = now_ms();
    // Shard 0 comes back: its partitions return to it.
    fleet.wait_preferred(0, Duration::from_secs(20)).await.expect("shard 0 dispatching again");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let end = now_ms();
    fleet.stop_all().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let received = collector.snapshot();
    let partition_of: HashMap<i64, u32> = checks.iter().map(|c| (c.id, c.partition)).collect();
    // Per partition, the publishers in receive order must never interleave:
    // A, B, A within a short time would mean two members at once.
    let mut by_partition: HashMap<u32, Vec<&Received>> = HashMap::new();
    for r in &received {
        by_partition.entry(partition_of[&r.check_id]).or_default().push(r);
    }
    let mut overlaps = Vec::new();
    for (p, mut msgs) in by_partition {
        msgs.sort_by_key(|r| r.at_ms);
        let mut spans: Vec<(String, i64, i64)> = Vec::new();
        for r in msgs {
            match spans.last_mut() {
                Some((who, _, last)) if *who == r.publisher => *last = r.at_ms,
                _ => spans.push((r.publisher.clone(), r.at_ms, r.at_ms)),
            }
        }
        for pair in spans.windows(3) {
            // A short span of another member between two spans of one member.
            if pair[0].0 == pair[2].0 && pair[1].2 - pair[1].1 < 2000 && pair[2].1 - pair[0].2 < 3000 {
                overlaps.push(format!("partition {p}: {pair:?}"));
            }
        }
    }
    assert!(
        overlaps.is_empty(),
        "two members dispatched one partition at once: {:?}",
        &overlaps[..overlaps.len().min(5)]
    );
    // The cut-off member stopped dispatching within its lease TTL.
    let late: Vec<_> = received
        .iter()
        .filter(|r| {
            r.publisher == Fleet::scheduler_name(0)
                && r.at_ms > blocked_at + ttl as i64 + 500
                && r.at_ms < unblocked_at
        })
        .collect();
    assert!(
        late.is_empty(),
        "shard 0 published {} jobs without a provable lease, e.g. {:?}",
        late.len(),
        late.first()
    );
    // Dispatch resumed everywhere.
    let recent: HashSet<u32> =
        received.iter().filter(|r| r.at_ms > end - 3000).map(|r| partition_of[&r.check_id]).collect();
    assert_eq!(recent.len(), PARTITIONS as usize, "every partition dispatches again");
}

/// A partition's first owner can die before it ever writes a watermark.
/// Its successor must resume from that first claim, not from its own
/// start: the slots in between are published late or recorded missed,
/// never skipped silently. A trigger refuses every watermark write that is
/// not a claim, so the first owner never gets one in, whatever the timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_owner_lost_before_any_watermark_leaves_no_silent_gap() {
    let ttl = 3000u64;
    let (mut fleet, collector, checks) = setup(100, 2, ttl, 1000).await;
    let client = fleet.db.client().await;
    client
        .batch_execute(
            "CREATE FUNCTION test_refuse_watermarks() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.epoch = OLD.epoch AND NEW.watermark IS DISTINCT FROM OLD.watermark THEN
                 RAISE EXCEPTION 'watermark writes refused by the test';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER test_refuse_watermarks BEFORE UPDATE ON partition_leases
               FOR EACH ROW EXECUTE FUNCTION test_refuse_watermarks();",
        )
        .await
        .expect("install trigger");
    fleet.start_scheduler(0);
    fleet.wait_owned_by(&[0], Duration::from_secs(20)).await.expect("shard 0 owns everything");
    let from = now_ms();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let advanced: i64 = client
        .query_one("SELECT count(*) FROM partition_leases WHERE watermark > acquired_at", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(advanced, 0, "the trigger let a watermark through");
    assert!(collector.count() > 0, "shard 0 dispatched");
    fleet.schedulers.get_mut(&0).unwrap().kill9();
    let killed_at = now_ms();
    client.batch_execute("DROP TRIGGER test_refuse_watermarks ON partition_leases").await.unwrap();

    fleet.start_scheduler(1);
    fleet.wait_owned_by(&[1], Duration::from_millis(ttl + 10_000)).await.expect("shard 1 took over");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let to = now_ms() - 2000;
    fleet.stop_all().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let seen = counts(&collector.snapshot());
    let missed = fleet.missed(&checks).await;
    let lost: Vec<String> = expected_slots(&checks, from, to)
        .into_iter()
        .filter(|(id, slot)| {
            !seen.contains_key(&(*id, *slot)) && !missed.get(id).is_some_and(|m| m.contains_key(slot))
        })
        .map(|(id, slot)| format!("check {id} slot {slot} ({} ms after the kill)", slot - killed_at))
        .collect();
    assert!(
        lost.is_empty(),
        "{} slots neither published nor recorded missed, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_changes_take_effect_within_two_seconds() {
    let (mut fleet, collector, _) = setup(0, 1, 15_000, 5_000).await;
    fleet.start_scheduler(0);
    fleet.wait_owned_by(&[0], Duration::from_secs(20)).await.expect("all partitions owned");
    let client = fleet.db.client().await;
    let published = |id: i64, after: i64| {
        collector.snapshot().into_iter().filter(|r| r.check_id == id && r.at_ms > after).collect::<Vec<_>>()
    };

    // Insert: published within 2 s (interval 1 s).
    let t = now_ms();
    let id: i64 = client
        .query_one(
            "INSERT INTO checks (name, interval_ms, spec) VALUES ('new', 1000, '{\"url\":\"http://127.0.0.1:9/a\",\"timeout_ms\":500}') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        crate::support::eventually(Duration::from_secs(3), || async { !published(id, t).is_empty() }).await
    );
    let first = published(id, t)[0].at_ms;
    assert!(first - t <= 2000, "first job {} ms after insert", first - t);

    // Update: jobs carry the new spec within 2 s.
    let t = now_ms();
    client
        .execute(
            "UPDATE checks SET spec = '{\"url\":\"http://127.0.0.1:9/b\",\"timeout_ms\":500}' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let updated =
        || published(id, t).into_iter().find(|r| String::from_utf8_lossy(&r.body).contains("127.0.0.1:9/b"));
    assert!(crate::support::eventually(Duration::from_secs(3), || async { updated().is_some() }).await);
    assert!(updated().unwrap().at_ms - t <= 2000);
    // One job's JSON, whether a whole one-slot message or a slot of a
    // version-3 message (`CheckJob::decode` reads only the former).
    let job: sentryk8s::model::CheckJob = serde_json::from_slice(&updated().unwrap().body).unwrap();
    assert_eq!(job.version, 2);

    // Disable, then delete: no more jobs after 2 s.
    client.execute("UPDATE checks SET enabled = false WHERE id = $1", &[&id]).await.unwrap();
    let t = now_ms();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(published(id, t + 2000).is_empty(), "a disabled check is not dispatched");
    client.execute("UPDATE checks SET enabled = true WHERE id = $1", &[&id]).await.unwrap();
    let t = now_ms();
    assert!(
        crate::support::eventually(Duration::from_secs(3), || async { !published(id, t).is_empty() }).await
    );
    client.execute("DELETE FROM checks WHERE id = $1", &[&id]).await.unwrap();
    let t = now_ms();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(published(id, t + 2000).is_empty(), "a deleted check is not dispatched");
    fleet.stop_all().await;
}

/// Shortening an interval (1 h to 2 s) starts the new grid at the change:
/// the new grid's slots of the hour before it are neither recorded missed
/// nor published late, and the slots after it run on time on the new grid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shortening_an_interval_starts_the_new_grid_at_the_change() {
    let (mut fleet, collector, _) = setup(0, 1, 15_000, 5_000).await;
    let checks = fleet
        .insert_checks(
            "SELECT 'hourly', 3600000, '{\"url\":\"http://127.0.0.1:9/\",\"timeout_ms\":500}'::jsonb",
        )
        .await;
    let id = checks[0].id;
    fleet.start_scheduler(0);
    fleet.wait_owned_by(&[0], Duration::from_secs(20)).await.expect("all partitions owned");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = fleet.db.client().await;
    let changed_at = now_ms();
    client.execute("UPDATE checks SET interval_ms = 2000 WHERE id = $1", &[&id]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let end = now_ms();
    fleet.stop_all().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let missed: i64 = client
        .query_one("SELECT count(*) FROM missed_slots WHERE check_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(missed, 0, "slots of the new grid before the change were recorded missed");
    let after: Vec<Received> =
        collector.snapshot().into_iter().filter(|r| r.check_id == id && r.at_ms >= changed_at).collect();
    let early: Vec<String> = after
        .iter()
        .filter(|r| r.slot < changed_at)
        .map(|r| format!("slot {} ms before the change", changed_at - r.slot))
        .collect();
    assert!(
        early.is_empty(),
        "{} slots from before the change published late, e.g. {:?}",
        early.len(),
        &early[..early.len().min(3)]
    );
    let phase = slots::phase(id, 2000);
    for r in &after {
        assert_eq!((r.slot - phase).rem_euclid(2000), 0, "slot {} is off the new grid", r.slot);
        assert!(r.at_ms - r.slot < 1000, "slot published {} ms late", r.at_ms - r.slot);
    }
    let seen: HashSet<i64> = after.iter().map(|r| r.slot).collect();
    let new_grid = Check { id, interval: 2000, partition: checks[0].partition };
    let expected = expected_slots(&[new_grid], changed_at + 2500, end - 1500);
    assert!(expected.len() >= 3, "{} slots expected", expected.len());
    let lost: Vec<i64> = expected.iter().map(|(_, s)| *s).filter(|s| !seen.contains(s)).collect();
    let got: Vec<(i64, i64)> = after.iter().map(|r| (r.slot - changed_at, r.at_ms - changed_at)).collect();
    assert!(
        lost.is_empty(),
        "new-grid slots never published: {lost:?}; got (slot, received) ms after the change: {got:?}"
    );
}

#[test]
fn a_host_name_without_ordinal_is_a_clear_startup_error() {
    let (status, out) = Binary::run(
        &["scheduler", "--shard-from-hostname", "--shards", "3"],
        &[("HOSTNAME".into(), "sentryk8s-scheduler".into())],
    );
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("does not end in -<ordinal>") && out.contains("sentryk8s-scheduler"), "{out}");
    let (status, out) = Binary::run(
        &["scheduler", "--shard-from-hostname", "--shards", "3"],
        &[("HOSTNAME".into(), "sentryk8s-scheduler-3".into())],
    );
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("not below --shards 3"), "{out}");
    let (status, out) = Binary::run(
        &["scheduler", "--shard-from-hostname"],
        &[("HOSTNAME".into(), "sentryk8s-scheduler-0".into())],
    );
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("scheduler.shards"), "{out}");
}
