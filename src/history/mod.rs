//! History: uptime and SLA over any window, incidents, and the rollups
//! they are read from (docs/history.md is the definition, with a worked
//! example).
//!
//! - `uptime.rs` — what a slot's time counts as (up, down, no data,
//!   maintenance) and where uptime is computed (pure);
//! - `buckets.rs` — hours and days, and a slot's time split across them (pure);
//! - `histogram.rs` — the fixed log-spaced latency histogram and its
//!   percentiles (pure);
//! - `rollup.rs` — what results and missed slots add to the hourly and
//!   daily rollup rows (pure);
//! - `totals.rs` — the cumulative daily totals a window of days is read
//!   from, and what a batch of daily rows does to them (pure);
//! - `incidents.rs` — incident rows and what a batch does to them (pure);
//! - `windows.rs` — the maintenance windows as the writers see them;
//! - `report.rs` — reports over any window (raw results, hourly or daily
//!   rollups), status-page bars and the incident list: what readers call;
//! - `render.rs` — reports and incidents as tables, JSON and CSV (pure);
//! - `rebuild.rs` — `rollups rebuild` and the first migrate's backfill:
//!   recount from raw rows, write only the differences;
//! - `store.rs` — every SQL statement of history.
//!
//! The writers (the worker storing results, the scheduler recording missed
//! slots) call [`store::upsert_rollups`] inside their own transactions, so a
//! rollup moves exactly when the rows it counts are committed.

pub mod buckets;
pub mod histogram;
pub mod incidents;
pub mod rebuild;
pub mod render;
pub mod report;
pub mod rollup;
pub mod store;
pub mod totals;
pub mod uptime;
pub mod windows;
