//! Backoff for retries that must not give up on their own (publishing, storing): exponential
//! with jitter from 100 ms up to 5 s, forever; the caller decides when to stop.

use std::time::Duration;

use backon::BackoffBuilder;

pub fn backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}
