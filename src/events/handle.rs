//! The handle of a running incident-event publisher task: `stop` asks it to publish what the
//! outbox holds and end, `abort` ends it at once; `finish` bounds the whole by the end of the
//! grace period and logs what was published and what stays in the outbox.

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{EventOptions, EventReport};
use crate::ports::{EventOutbox, EventSink};

#[derive(Clone, Default)]
pub struct EventPublisher {
    pub stop: CancellationToken,
    pub abort: CancellationToken,
}

impl EventPublisher {
    /// Stops the task: it drains the outbox until a second before `end`, is then aborted (and
    /// counts what it leaves), and is dropped at `end` whatever it is waiting for; logs what it
    /// published and what it left for the next start.
    pub async fn finish(
        &self,
        mut task: tokio::task::JoinHandle<anyhow::Result<EventReport>>,
        end: tokio::time::Instant,
    ) -> anyhow::Result<()> {
        self.stop.cancel();
        let now = tokio::time::Instant::now();
        let abort_at = end.checked_sub(Duration::from_secs(1)).unwrap_or(now).max(now);
        let joined = tokio::select! {
            biased;
            r = &mut task => r,
            _ = tokio::time::sleep_until(abort_at) => {
                self.abort.cancel();
                match tokio::time::timeout_at(end.max(abort_at), &mut task).await {
                    Ok(r) => r,
                    Err(_) => {
                        task.abort();
                        tracing::warn!("incident event publisher still busy at the end of the grace period; \
                            what it did not mark stays in the outbox for the next publisher");
                        return Ok(());
                    }
                }
            }
        };
        let report = joined.context("the incident event publisher failed")??;
        match report.left {
            Some(0) => tracing::info!(published = report.published, "incident events published; none left"),
            Some(left) => tracing::warn!(
                published = report.published,
                left,
                "incident events left in the outbox at the stop: the next publisher (another consumer, or this one's next start) publishes them"
            ),
            None => tracing::warn!(
                published = report.published,
                "incident event publisher stopped; the outbox could not be read: what is left there is published by the next publisher"
            ),
        }
        Ok(())
    }

    pub async fn run<O: EventOutbox, S: EventSink>(&self, outbox: &O, sink: &S) -> EventReport {
        super::run(outbox, sink, &EventOptions::default(), self.stop.clone(), self.abort.clone()).await
    }
}
