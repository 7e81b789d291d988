//! What a check job becomes once the consumer is done with it, and what
//! the batcher stores: a result (the job and its outcome), a job that
//! arrived too late to run, or a slot of a batch that cannot be run. Each
//! is one slot and carries its message's delivery, settled after the commit.

use chrono::{DateTime, Utc};

use super::acks::Delivery;
use crate::model::{CheckJob, CheckOutcome};

/// A job that ran: what is stored.
#[derive(Debug, Clone)]
pub struct ResultRow {
    pub job: CheckJob,
    pub outcome: CheckOutcome,
}

/// What the batcher receives.
pub enum Item {
    /// A check ran.
    Finished { row: Box<ResultRow>, delivery: Delivery },
    /// A job arrived after slot + interval: recorded as missed, not run
    /// (its name, labels and interval say what history counts it as).
    Stale { job: Box<CheckJob>, delivery: Delivery },
    /// A slot of a batch that cannot be run (undecodable or nonsensical)
    /// but names its check and slot: recorded as missed, reason `invalid`
    /// (what history needs about the check is read from `checks`).
    Invalid { check_id: i64, slot: DateTime<Utc>, delivery: Delivery },
}

impl Item {
    pub fn delivery(&self) -> &Delivery {
        match self {
            Item::Finished { delivery, .. }
            | Item::Stale { delivery, .. }
            | Item::Invalid { delivery, .. } => delivery,
        }
    }
}
