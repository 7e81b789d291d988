//! Partition leases as this member sees them. A lease is claimed, renewed,
//! released and fenced in PostgreSQL ([`super::store`]: `claim_leases`,
//! `renew_leases`, `write_watermarks`, `release_leases`), always
//! conditioned on `owner = me AND epoch = e`: the epoch is a fencing token,
//! bumped by each claim, so a paused or partitioned ex-owner can no longer
//! move the watermark. The coordinator trusts a lease until `renew start +
//! TTL − margin` on its monotonic clock, and revokes it in the dispatcher
//! ([`super::trust::Gate`]) before releasing it or once it is lost.

/// A lease this member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub partition: u32,
    pub epoch: i64,
    /// Every slot before this (unix ms) was handed out: published, or
    /// recorded missed. Set by the first claim; `None` only for a lease row
    /// written by hand.
    pub watermark: Option<i64>,
}

/// One row of the lease table as seen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub partition: u32,
    pub owner: Option<String>,
    /// Whether the lease is unexpired by the database's clock.
    pub live: bool,
}
