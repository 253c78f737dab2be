//! Reloading the site list of a running producer: SIGHUP, and with `--watch` a change of a
//! watched file (those of the config last loaded), has the site list read again; a list that
//! loads goes to the producer (see [`crate::producer::Reloads`]), a config with problems is
//! reported problem by problem and the running list stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::config::ConfigError;
use crate::domain::Site;
use crate::producer::NewList;

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

/// What a reload read: this producer's sites, and the files the config that gave them is made of
/// (the config file and its `sites_file`), which `--watch` watches from then on.
#[derive(Debug)]
pub struct Loaded {
    pub sites: Vec<Site>,
    pub files: Vec<PathBuf>,
}

/// SIGHUP's stream: taken as the producer starts, so that from then on SIGHUP (whose default
/// action ends the process) asks for a reload, also during the first load of a long site list.
pub fn hangups() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// Reads the site list again on SIGHUP and, when `watch` names files, on a change of one of them
/// (modification time or length, polled every second; a change is acted on once the file held
/// still for one poll, so a file being written is not read half-way). `load` reads and checks the
/// list (this producer's share, ready to be checked); each list it gives goes to `to`, and the
/// files it names replace `watch` (a `sites_file` pointed elsewhere is followed; a config that
/// fails to load leaves the watched files as they were). Ends, with its tasks, once `to`'s
/// receiver is gone.
///
/// Call [`hangups`] first thing: from then on SIGHUP no longer ends the process.
///
/// `hangup` is [`hangups`]' stream, taken when the process started: a SIGHUP while the list first
/// loads is a reload as soon as the producer runs.
pub fn spawn<L>(
    load: L,
    watch: Vec<PathBuf>,
    to: mpsc::Sender<NewList>,
    mut hangup: Signal,
) -> std::io::Result<()>
where
    L: Fn() -> Result<Loaded, ConfigError> + Send + Sync + 'static,
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
    let files = (!watch.is_empty()).then(|| {
        // As they are now, just after the list running was read from them.
        let (files, watched) = watch::channel(watch.into_iter().map(|f| (signature(&f), f)).collect());
        tokio::spawn(poll_files(watched, tx, POLL));
        files
    });
    tokio::spawn(run(load, triggers, to, files));
    Ok(())
}

/// For each trigger, reads the site list with `load` and hands it to `to`, or reports why it
/// cannot (see [`reload`]); after a list that loaded, its files go to `files` (the watched set,
/// when there is one) if they are not the ones watched. Ends when `triggers` ends or `to`'s
/// receiver is gone.
pub async fn run<L>(
    load: L,
    mut triggers: mpsc::Receiver<Trigger>,
    to: mpsc::Sender<NewList>,
    files: Option<watch::Sender<Watched>>,
) where
    L: Fn() -> Result<Loaded, ConfigError> + Send + Sync + 'static,
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
        match load_and_send(load.clone(), &to).await {
            (Reloaded::ProducerGone, _) => return,
            (_, Some(read)) => {
                if let Some(files) = &files {
                    files.send_if_modified(|watched| {
                        let same = watched.iter().map(|(_, f)| f).eq(read.iter().map(|(_, f)| f));
                        if !same {
                            *watched = read;
                        }
                        !same
                    });
                }
            }
            (_, None) => {}
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
pub async fn reload<L>(load: Arc<L>, to: &mpsc::Sender<NewList>) -> Reloaded
where
    L: Fn() -> Result<Loaded, ConfigError> + Send + Sync + 'static,
{
    load_and_send(load, to).await.0
}

/// [`reload`], and the files of the config when its list went to the producer, each with its
/// signature taken right after the load read it.
async fn load_and_send<L>(load: Arc<L>, to: &mpsc::Sender<NewList>) -> (Reloaded, Option<Watched>)
where
    L: Fn() -> Result<Loaded, ConfigError> + Send + Sync + 'static,
{
    let read = move || {
        let loaded = load()?;
        let files = loaded.files.into_iter().map(|f| (signature(&f), f)).collect();
        Ok::<_, ConfigError>((loaded.sites, files))
    };
    let loaded = match tokio::task::spawn_blocking(read).await {
        Ok(loaded) => loaded,
        Err(e) => {
            metrics::counter!(crate::metric::CONFIG_RELOAD_FAILURES).increment(1);
            tracing::error!(error = %e, "reading the site list failed; keeping the running list");
            return (Reloaded::Failed, None);
        }
    };
    match loaded {
        Ok((sites, files)) => {
            let n = sites.len();
            if to.send(sites.into()).await.is_err() {
                return (Reloaded::ProducerGone, None);
            }
            metrics::counter!(crate::metric::CONFIG_RELOADS).increment(1);
            tracing::info!(sites = n, "site list read; the producer takes it between two slots");
            (Reloaded::Sent, Some(files))
        }
        Err(e) => {
            metrics::counter!(crate::metric::CONFIG_RELOAD_FAILURES).increment(1);
            report(&e);
            (Reloaded::Failed, None)
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

/// The files `--watch` watches, each with its signature when the list running was read.
pub type Watched = Vec<(Signature, PathBuf)>;

fn signature_of(meta: std::io::Result<std::fs::Metadata>) -> Signature {
    meta.ok().and_then(|m| Some((m.modified().ok()?, m.len())))
}

/// A file's signature now, blocking (a reload's thread, or the start).
fn signature(file: &Path) -> Signature {
    signature_of(std::fs::metadata(file))
}

async fn signatures(files: &[PathBuf]) -> Vec<Signature> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        out.push(signature_of(tokio::fs::metadata(f).await));
    }
    out
}

/// Polls the files `watched` holds (every `every`) and sends a trigger once a change held still
/// for one poll; a new set of files is taken at the next poll. Ends when the trigger's receiver
/// is gone.
async fn poll_files(mut watched: watch::Receiver<Watched>, tx: mpsc::Sender<Trigger>, every: Duration) {
    let (mut acted_on, mut files): (Vec<Signature>, Vec<PathBuf>) =
        watched.borrow_and_update().iter().cloned().unzip();
    let mut settling: Option<Vec<Signature>> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tick.tick() => {}
        }
        // A sender gone (the reloads ended) leaves the set as it is.
        if watched.has_changed().unwrap_or(false) {
            let next = watched.borrow_and_update().clone();
            // A file kept is compared with what was last acted on; a new one with what it was
            // when the reload that named it had read it.
            acted_on = next
                .iter()
                .map(|(read, f)| files.iter().position(|old| old == f).map_or(*read, |i| acted_on[i]))
                .collect();
            files = next.into_iter().map(|(_, f)| f).collect();
            tracing::info!(files = ?files, "watching the files of the config last loaded");
            settling = None;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::Problem;

    /// A stand-in for the config: a file naming the sites file (`bad`: a config with a problem);
    /// the sites file holds the one site's name. Counts its loads.
    fn loader(config: PathBuf, loads: Arc<AtomicUsize>) -> impl Fn() -> Result<Loaded, ConfigError> {
        move || {
            loads.fetch_add(1, Ordering::SeqCst);
            let named = std::fs::read_to_string(&config).expect("the config file");
            if named == "bad" {
                let problems = vec![Problem::new("sites_file", "broken on purpose")];
                return Err(ConfigError { file: config.clone(), problems });
            }
            let sites_file = config.with_file_name(named);
            let name = std::fs::read_to_string(&sites_file).expect("the sites file");
            let text = format!("sites:\n  - {{name: {name}, url: 'http://x/'}}\n");
            let sites = crate::config::parse(&text, &config, &|_| None).expect("a valid site").sites;
            Ok(Loaded { sites, files: vec![config.clone(), sites_file] })
        }
    }

    async fn next_list(lists: &mut mpsc::Receiver<NewList>) -> String {
        let list = tokio::time::timeout(Duration::from_secs(10), lists.recv())
            .await
            .expect("no reload within 10 s of the change")
            .expect("the reloads still run");
        list.sites.iter().map(|s| s.id.clone()).collect()
    }

    #[tokio::test]
    async fn watch_follows_the_sites_file_of_the_config_last_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let (config, a, b) = (at("sitemon.yaml"), at("a.csv"), at("b.csv"));
        let write = |file: &Path, text: &str| std::fs::write(file, text).unwrap();
        write(&config, "a.csv");
        write(&a, "a1");
        write(&b, "b1");
        let loads = Arc::new(AtomicUsize::new(0));
        let (to, mut lists) = mpsc::channel(1);
        let (tx, triggers) = mpsc::channel(1);
        let (files, watched) =
            watch::channel([&config, &a].into_iter().map(|f| (signature(f), f.clone())).collect());
        tokio::spawn(poll_files(watched, tx, Duration::from_millis(10)));
        tokio::spawn(run(loader(config.clone(), loads.clone()), triggers, to, Some(files)));

        write(&a, "a22");
        assert_eq!(next_list(&mut lists).await, "a22", "a change of the sites file at start");
        // The config now names another sites file: from here on that one is watched.
        write(&config, "b.csv");
        assert_eq!(next_list(&mut lists).await, "b1");
        write(&b, "b22");
        assert_eq!(next_list(&mut lists).await, "b22", "a change of the sites file the config names now");

        // A config that does not load changes nothing, the files watched included.
        let before = loads.load(Ordering::SeqCst);
        write(&config, "bad");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while loads.load(Ordering::SeqCst) == before {
            assert!(tokio::time::Instant::now() < deadline, "the bad config was not read within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        write(&config, "b.csv");
        assert_eq!(next_list(&mut lists).await, "b22");
        write(&b, "b333");
        assert_eq!(next_list(&mut lists).await, "b333");
    }
}
