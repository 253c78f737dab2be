//! The producer's readiness: ready while its publisher reaches the results' destination (a
//! broker), not ready while results could only be queued.

use std::convert::Infallible;
use std::time::Duration;

use crate::health::Health;
use crate::ports::StatusPublisher;

/// How often the publisher's connectivity is read.
const EVERY: Duration = Duration::from_millis(250);

/// Follows `publisher`'s connectivity into `health`, for as long as it is polled: run it beside
/// the producer and drop it when the producer stops.
pub async fn follow_publisher<S: StatusPublisher>(publisher: &S, health: &Health) -> Infallible {
    let mut last = None;
    loop {
        let up = publisher.is_connected();
        if last != Some(up) {
            if up {
                health.ready();
            } else {
                health.not_ready("no broker reachable: results can only be queued");
            }
            last = Some(up);
        }
        tokio::time::sleep(EVERY).await;
    }
}
