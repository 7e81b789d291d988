//! What a check job becomes once the consumer is done with it, and what
//! the batcher stores: a result (the job and its outcome), or a job that
//! arrived too late to run. Each carries the delivery acknowledged after
//! the commit.

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
}

impl Item {
    pub fn delivery(&self) -> &Delivery {
        match self {
            Item::Finished { delivery, .. } | Item::Stale { delivery, .. } => delivery,
        }
    }
}
