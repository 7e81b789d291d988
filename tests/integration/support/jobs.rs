//! Consumes the job queue directly, as a test's stand-in for workers: each
//! slot's (check_id, slot) is its identity. A version-3 message (several
//! slots) counts as one `Received` per slot, whose `body` is that slot's job.

use std::sync::{Arc, Mutex};

use amqprs::channel::BasicConsumeArguments;
use amqprs::connection::Connection;
use sentryk8s::model::job::{parse_message_id, JobMessage};

use super::TestBroker;

#[derive(Debug, Clone)]
pub struct Received {
    pub check_id: i64,
    pub slot: i64,
    /// The publishing scheduler (AMQP app_id).
    pub publisher: String,
    /// When the collector received it (unix ms).
    pub at_ms: i64,
    pub redelivered: bool,
    pub body: Vec<u8>,
}

pub struct JobCollector {
    received: Arc<Mutex<Vec<Received>>>,
    connection: Connection,
    task: tokio::task::JoinHandle<()>,
}

impl JobCollector {
    pub async fn start(broker: &TestBroker) -> JobCollector {
        let connection = broker.connect().await;
        let channel = connection.open_channel(None).await.expect("open channel");
        sentryk8s::queue::declare_topology(&channel, &broker.topology()).await.expect("declare topology");
        let mut args = BasicConsumeArguments::new(&broker.queue, "test-collector");
        args.no_ack = true;
        let (_, mut rx) = channel.basic_consume_rx(args).await.expect("consume");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            // Keeps the channel alive as long as the task runs.
            let _channel = channel;
            while let Some(message) = rx.recv().await {
                let at_ms = chrono::Utc::now().timestamp_millis();
                let (Some(deliver), Some(props), Some(body)) =
                    (message.deliver, message.basic_properties, message.content)
                else {
                    continue;
                };
                let slots: Vec<(i64, i64, Vec<u8>)> = match JobMessage::decode(&body) {
                    Ok(JobMessage::Batch(slots)) => slots
                        .into_iter()
                        .filter_map(Result::ok)
                        .map(|job| (job.check_id, job.slot.timestamp_millis(), job.encode()))
                        .collect(),
                    // One slot, named by the message id (also when the body
                    // does not decode: the id is the identity).
                    _ => match props.message_id().map(String::as_str).and_then(parse_message_id) {
                        Some((check_id, slot)) => vec![(check_id, slot, body)],
                        None => continue,
                    },
                };
                if let Ok(mut r) = sink.lock() {
                    for (check_id, slot, body) in slots {
                        r.push(Received {
                            check_id,
                            slot,
                            publisher: props.app_id().cloned().unwrap_or_default(),
                            at_ms,
                            redelivered: deliver.redelivered(),
                            body,
                        });
                    }
                }
            }
        });
        JobCollector { received, connection, task }
    }

    pub fn snapshot(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.received.lock().map(|r| r.len()).unwrap_or(0)
    }

    pub async fn stop(self) -> Vec<Received> {
        let _ = self.connection.close().await;
        let _ = self.task.await;
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}
