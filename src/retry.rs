//! Retrying while not stopped: backoff (exponential with jitter from 100 ms up to 5 s, forever)
//! and [`until_stopped`], the one loop that runs an attempt again after each transient failure
//! until it succeeds, fails for good, or a stop comes.

use std::future::Future;
use std::time::Duration;

use backon::BackoffBuilder;
use tokio_util::sync::CancellationToken;

pub fn backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// How an attempt failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// Worth another attempt after a pause.
    Transient(E),
    /// Will not heal by waiting: returned at once.
    Permanent(E),
}

/// Whether a stop also cuts an attempt under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// The attempt under way ends (a read, a lookup: nothing is lost by cutting it).
    CutAttempt,
    /// The attempt under way runs to its end; only the pause before the next one is cut (a write
    /// whose loss would repeat work, such as recording a provider's answer).
    FinishAttempt,
}

/// Runs `attempt` until it succeeds (`Some(Ok)`) or fails for good (`Some(Err)`), pausing after
/// each transient failure by [`backoff`] (`on_retry` is told the error and the pause first).
/// `None` once `stop` is cancelled (see [`OnStop`]) with nothing to return.
pub async fn until_stopped<T, E, F: Future<Output = Result<T, Failure<E>>>>(
    stop: &CancellationToken,
    on_stop: OnStop,
    mut attempt: impl FnMut() -> F,
    mut on_retry: impl FnMut(&E, Duration),
) -> Option<Result<T, E>> {
    let mut waits = backoff();
    loop {
        let outcome = match on_stop {
            OnStop::FinishAttempt => attempt().await,
            OnStop::CutAttempt => tokio::select! {
                outcome = attempt() => outcome,
                _ = stop.cancelled() => return None,
            },
        };
        let e = match outcome {
            Ok(value) => return Some(Ok(value)),
            Err(Failure::Permanent(e)) => return Some(Err(e)),
            Err(Failure::Transient(e)) => e,
        };
        let pause = waits.next().unwrap_or(Duration::from_secs(5));
        on_retry(&e, pause);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_transient_failures_and_returns_a_permanent_one_at_once() {
        let stop = CancellationToken::new();
        let mut calls = 0;
        let mut told = Vec::new();
        let got = until_stopped(
            &stop,
            OnStop::FinishAttempt,
            || {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err(Failure::Transient(n)) } else { Ok("done") } }
            },
            |e, _| told.push(*e),
        )
        .await;
        assert_eq!(got.map(|r| r.ok()), Some(Some("done")));
        assert_eq!(told, [1, 2]);
        let got = until_stopped(
            &stop,
            OnStop::CutAttempt,
            || async { Err::<(), _>(Failure::Permanent("no")) },
            |_, _| panic!("a permanent failure is not retried"),
        )
        .await;
        assert_eq!(got.map(|r| r.err()), Some(Some("no")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_pause_and_with_cut_attempt_the_attempt() {
        let stop = CancellationToken::new();
        stop.cancel();
        let got = until_stopped(
            &stop,
            OnStop::FinishAttempt,
            || async { Err::<(), _>(Failure::Transient(())) },
            |_, _| {},
        )
        .await;
        assert!(got.is_none(), "stopped during the pause");
        let got = until_stopped(
            &stop,
            OnStop::CutAttempt,
            || async {
                std::future::pending::<()>().await;
                Ok::<_, Failure<()>>(())
            },
            |_, _| {},
        )
        .await;
        assert!(got.is_none(), "an attempt that never ends is cut");
        let got =
            until_stopped(&stop, OnStop::FinishAttempt, || async { Ok::<_, Failure<()>>(7) }, |_, _| {})
                .await;
        assert_eq!(got.map(|r| r.ok()), Some(Some(7)), "a finished attempt's result is kept");
    }
}
