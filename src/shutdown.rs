//! Signal handling: the first SIGINT/SIGTERM asks for a graceful stop, a second one exits now.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Exit code when a second signal cuts the grace period short.
pub const FORCED_EXIT: i32 = 130;

/// Cancels the returned token on the first signal; exits the process on the second.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_signal().await;
        tracing::info!("shutdown requested: finishing in-flight work (signal again to exit now)");
        t.cancel();
        wait_signal().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(FORCED_EXIT);
    });
    token
}

/// The end of the grace period: `grace` after `token` is cancelled. The task notes the moment of
/// the cancellation while the rest of the process goes on stopping.
pub fn deadline(token: CancellationToken, grace: Duration) -> tokio::task::JoinHandle<Instant> {
    tokio::spawn(async move {
        token.cancelled().await;
        Instant::now() + grace
    })
}

async fn wait_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
