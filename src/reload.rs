//! Reloading the site list of a running producer: SIGHUP, and with `--watch` a change of a
//! watched file, has the site list read again; a list that loads goes to the producer (see
//! [`crate::producer::Reloads`]), a config with problems is reported problem by problem and the
//! running list stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::ConfigError;
use crate::domain::Site;

/// Why the site list is read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// A watched file changed (and then held still for a poll).
    Changed(PathBuf),
}

/// How often watched files are looked at.
const POLL: Duration = Duration::from_secs(1);

/// SIGHUP's stream: taken as the producer starts, so that from then on SIGHUP (whose default
/// action ends the process) asks for a reload, also during the first load of a long site list.
pub fn hangups() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// Reads the site list again on SIGHUP and, when `watch` names files, on a change of one of them
/// (modification time or length, polled every second; a change is acted on once the file held
/// still for one poll, so a file being written is not read half-way). `load` reads and checks the
/// list (this producer's share, ready to be checked); each list it gives goes to `to`. Ends, with
/// its tasks, once `to`'s receiver is gone.
///
/// Call [`hangups`] first thing: from then on SIGHUP no longer ends the process.
///
/// `hangup` is [`hangups`]' stream, taken when the process started: a SIGHUP while the list first
/// loads is a reload as soon as the producer runs.
pub fn spawn<L>(
    load: L,
    watch: Vec<PathBuf>,
    to: mpsc::Sender<Vec<Site>>,
    mut hangup: Signal,
) -> std::io::Result<()>
where
    L: Fn() -> Result<Vec<Site>, ConfigError> + Send + Sync + 'static,
{
    // One trigger waiting is enough: any number of them while a reload runs ask for one more.
    let (tx, triggers) = mpsc::channel(1);
    tokio::spawn({
        let tx = tx.clone();
        async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    got = hangup.recv() => {
                        if got.is_none() {
                            return;
                        }
                        let _ = tx.try_send(Trigger::Signal);
                    }
                }
            }
        }
    });
    if !watch.is_empty() {
        tokio::spawn(poll_files(watch, tx));
    }
    tokio::spawn(run(load, triggers, to));
    Ok(())
}

/// For each trigger, reads the site list with `load` and hands it to `to`, or reports why it
/// cannot (see [`reload`]). Ends when `triggers` ends or `to`'s receiver is gone.
pub async fn run<L>(load: L, mut triggers: mpsc::Receiver<Trigger>, to: mpsc::Sender<Vec<Site>>)
where
    L: Fn() -> Result<Vec<Site>, ConfigError> + Send + Sync + 'static,
{
    let load = Arc::new(load);
    loop {
        let trigger = tokio::select! {
            _ = to.closed() => return,
            t = triggers.recv() => match t {
                Some(t) => t,
                None => return,
            },
        };
        match &trigger {
            Trigger::Signal => tracing::info!("SIGHUP: reading the site list again"),
            Trigger::Changed(file) => {
                tracing::info!(file = %file.display(), "file changed: reading the site list again")
            }
        }
        if reload(load.clone(), &to).await == Reloaded::ProducerGone {
            return;
        }
    }
}

/// What one reload came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The list loaded and the producer has it.
    Sent,
    /// The config has problems (each one logged); the running list stays.
    Failed,
    /// The producer is no longer there to take a list.
    ProducerGone,
}

/// Reads the site list once (off the runtime's threads: a large list takes a while) and hands it
/// to `to`. A config with problems logs one line per problem with its place in the file, counts
/// `sitemon_config_reload_failures_total` and changes nothing; a list that loads counts
/// `sitemon_config_reloads_total`.
pub async fn reload<L>(load: Arc<L>, to: &mpsc::Sender<Vec<Site>>) -> Reloaded
where
    L: Fn() -> Result<Vec<Site>, ConfigError> + Send + Sync + 'static,
{
    let loaded = match tokio::task::spawn_blocking(move || load()).await {
        Ok(loaded) => loaded,
        Err(e) => {
            metrics::counter!("sitemon_config_reload_failures_total").increment(1);
            tracing::error!(error = %e, "reading the site list failed; keeping the running list");
            return Reloaded::Failed;
        }
    };
    match loaded {
        Ok(sites) => {
            let n = sites.len();
            if to.send(sites).await.is_err() {
                return Reloaded::ProducerGone;
            }
            metrics::counter!("sitemon_config_reloads_total").increment(1);
            tracing::info!(sites = n, "site list read; the producer takes it between two slots");
            Reloaded::Sent
        }
        Err(e) => {
            metrics::counter!("sitemon_config_reload_failures_total").increment(1);
            report(&e);
            Reloaded::Failed
        }
    }
}

/// One error line per problem (problem texts never quote a secret), then what happens.
fn report(e: &ConfigError) {
    let file = e.file.display();
    for p in &e.problems {
        tracing::error!(at = %p.place(&e.file), field = %p.path, problem = %p.message, "config reload: problem");
    }
    tracing::error!(
        file = %file,
        problems = e.problems.len(),
        "config reload failed; the running site list stays"
    );
}

/// What a file looks like from outside: modification time and length (`None` while it cannot be
/// read, e.g. between an editor's delete and rename).
type Signature = Option<(SystemTime, u64)>;

async fn signatures(files: &[PathBuf]) -> Vec<Signature> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        out.push(tokio::fs::metadata(f).await.ok().and_then(|m| Some((m.modified().ok()?, m.len()))));
    }
    out
}

/// Polls `files` and sends a trigger once a change held still for one poll; ends when the
/// trigger's receiver is gone.
async fn poll_files(files: Vec<PathBuf>, tx: mpsc::Sender<Trigger>) {
    let mut acted_on = signatures(&files).await;
    let mut settling: Option<Vec<Signature>> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tick.tick() => {}
        }
        let now = signatures(&files).await;
        if now == acted_on {
            settling = None;
            continue;
        }
        if settling.as_ref() != Some(&now) {
            // Changed since the last poll: maybe still being written.
            settling = Some(now);
            continue;
        }
        let changed = files
            .iter()
            .zip(now.iter().zip(&acted_on))
            .find(|(_, (a, b))| a != b)
            .map(|(f, _)| f.clone())
            .unwrap_or_default();
        acted_on = now;
        settling = None;
        // Full: a reload is already waiting and will read the file as it is now.
        let _ = tx.try_send(Trigger::Changed(changed));
    }
}
