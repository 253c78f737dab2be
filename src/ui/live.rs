//! The refreshing status table `sitemon run` shows on a terminal.

use std::io::Write;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Overview, StatusQuery, status_table};
use crate::ports::StatusStore;

const CLEAR: &str = "\x1b[2J\x1b[H";

/// Redraws the table from the store every `every` until shutdown.
pub async fn live_table<S: StatusStore>(
    store: &S,
    every: Duration,
    title: &str,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let body = match Overview::read(store).await {
            Ok(o) => status_table(&o, &StatusQuery::default(), chrono::Utc::now()),
            Err(e) => format!("cannot read the status: {e}\n"),
        };
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{CLEAR}{title}\n\n{body}\n(Ctrl-C to stop)\n");
        let _ = out.flush();
    }
}
