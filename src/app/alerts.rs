//! The alerting commands' wiring: `sitemon notify` (Kafka feed, PostgreSQL deliveries, one
//! sender per provider), `notify test`, `sitemon silence`, and the alerts of `sitemon run` (the
//! SQLite file's deliveries).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::ops;
use crate::cli::{NotifyAction, NotifyArgs, NotifyTestArgs, SilenceCommand};
use crate::config::{self, ConfigError, Problem};
use crate::exit;
use crate::kafka::{ClientSetupError, KafkaFeed};
use crate::notifier::{self, NotifyOptions};
use crate::notify::{Channel, Claimed, Outcome, Pattern, Planner};
use crate::ports::{DeliveryStore, NewSilence, Sender, StatusFeed};
use crate::providers::ProviderSender;
use crate::setup;
use crate::shutdown;
use crate::store::{PgStore, SqliteDeliveries, SqliteStore};
use crate::ui;

pub(super) async fn run_notify(args: NotifyArgs, listen: Option<SocketAddr>) -> anyhow::Result<i32> {
    if let Some(NotifyAction::Test(t)) = args.action {
        return notify_test(t).await;
    }
    let path = args.config.context("--config is required")?;
    let setup::Notify { kafka, postgres, notify } = setup::Notify::load(&path)?;
    let health = ops(listen, "starting").await?;
    let store = PgStore::connect(&postgres)?;
    store.migrate().await?;
    let deliveries = Arc::new(store.deliveries());
    let mut feed = KafkaFeed::events(&kafka, &notify.group_id)
        .map_err(|e| ClientSetupError::new(e, &kafka).for_command(&path, "notify"))?;
    let channels = notify.providers.iter().map(|p| (p.name.clone(), p.kind.channel())).collect();
    let mut planner = Planner::new(notify.routes.clone(), channels, notify.storm, notify.maintenance.clone());
    let longest = notify.providers.iter().map(|p| p.timeout).max().unwrap_or_default();
    let opts = NotifyOptions {
        batch_size: 500,
        batch_wait: Duration::from_millis(200),
        exit_when_idle: args.exit_when_idle,
        lease: longest * 2 + Duration::from_secs(5),
        poll: Duration::from_millis(250),
        providers: notify.providers.iter().map(|p| p.name.clone()).collect(),
    };
    tracing::info!(brokers = %kafka.bootstrap_servers, topic = %kafka.events_topic, group = %notify.group_id, providers = notify.providers.len(), routes = notify.routes.len(), "notify starting");
    let stop = shutdown::on_signals();
    let senders_stop = stop.child_token();
    let mut senders = tokio::task::JoinSet::new();
    for p in &notify.providers {
        let sender = Arc::new(ProviderSender::for_config(p).with_context(|| format!("provider {}", p.name))?);
        let task = notifier::send_loop(
            p.name.clone(),
            deliveries.clone(),
            sender,
            notifier::Pace { lease: opts.lease, poll: opts.poll, spacing: p.spacing },
            senders_stop.clone(),
        );
        senders.spawn(task);
    }
    let report = notifier::run(&mut feed, &*deliveries, &mut planner, &opts, &health, stop.clone()).await?;
    // The requests in hand finish within the grace period; one cut short is sent again later
    // (its lease runs out), with the same idempotency key.
    senders_stop.cancel();
    let drained =
        tokio::time::timeout(args.grace, async { while senders.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("requests still in hand at the end of the grace period: they are sent again later");
        senders.abort_all();
    }
    if !feed.close_within(args.grace) {
        tracing::warn!("leaving the notify group did not finish within the grace period");
    }
    tracing::info!(
        events = report.events,
        planned = report.planned,
        unreadable = report.unreadable,
        "notify stopped"
    );
    Ok(exit::OK)
}

/// `sitemon run`'s alert senders and planner over the SQLite file's deliveries.
pub(super) struct EmbeddedAlerts {
    planner: Arc<tokio::sync::Mutex<Planner>>,
    store: Arc<SqliteDeliveries>,
    providers: Vec<String>,
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

pub(super) async fn embedded_alerts(
    n: &config::NotifyConfig,
    store: &SqliteStore,
) -> anyhow::Result<EmbeddedAlerts> {
    let channels = n.providers.iter().map(|p| (p.name.clone(), p.kind.channel())).collect();
    let planner = Arc::new(tokio::sync::Mutex::new(Planner::new(
        n.routes.clone(),
        channels,
        n.storm,
        n.maintenance.clone(),
    )));
    let deliveries = Arc::new(store.deliveries());
    // The silences in force before the first event is planned (the outbox may hold some).
    match deliveries.silences(chrono::Utc::now()).await {
        Ok(s) => planner.lock().await.set_silences(s.into_iter().map(|s| s.maintenance).collect()),
        Err(e) => tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot read the silences"),
    }
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let lease = n.providers.iter().map(|p| p.timeout).max().unwrap_or_default() * 2 + Duration::from_secs(5);
    for p in &n.providers {
        let sender = Arc::new(ProviderSender::for_config(p).with_context(|| format!("provider {}", p.name))?);
        let task = notifier::send_loop(
            p.name.clone(),
            deliveries.clone(),
            sender,
            notifier::Pace { lease, poll: Duration::from_millis(250), spacing: p.spacing },
            stop.clone(),
        );
        tasks.spawn(task);
    }
    tasks.spawn(notifier::tick_loop(planner.clone(), deliveries.clone(), stop.clone()));
    let providers = n.providers.iter().map(|p| p.name.clone()).collect();
    Ok(EmbeddedAlerts { planner, store: deliveries, providers, stop, tasks })
}

impl EmbeddedAlerts {
    /// The event sink that plans each event's alerts, then hands it to `then`.
    pub(super) fn sink<S>(&self, then: S) -> notifier::PlanningSink<SqliteDeliveries, S> {
        notifier::PlanningSink::new(self.planner.clone(), self.store.clone(), then)
    }

    /// The deliveries still due are tried until `deadline`; then the senders stop (what is left
    /// is sent at the next start, from the file).
    pub(super) async fn finish(mut self, deadline: tokio::time::Instant) {
        while tokio::time::Instant::now() < deadline
            && self.store.unfinished(&self.providers).await.is_ok_and(|n| n > 0)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.stop.cancel();
        if tokio::time::timeout_at(deadline, async { while self.tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}

/// `sitemon notify test --route`: a test message to each provider of the route, now, without the
/// database; each answer printed. PagerDuty's test alert is resolved right after.
async fn notify_test(args: NotifyTestArgs) -> anyhow::Result<i32> {
    let notify = setup::NotifyTest::load(&args.config.config, &args.route)?.notify;
    let channels = notify.providers.iter().map(|p| (p.name.clone(), p.kind.channel())).collect();
    let planner = Planner::new(notify.routes.clone(), channels, notify.storm, Vec::new());
    let mut all_sent = true;
    for o in planner.test(&args.route) {
        let p = notify
            .providers
            .iter()
            .find(|p| p.name == o.provider)
            .context("a route names a known provider")?;
        let sender = ProviderSender::for_config(p).with_context(|| format!("provider {}", p.name))?;
        let claimed = |delivery_id, body| Claimed {
            seq: 0,
            delivery_id,
            provider: o.provider.clone(),
            body,
            attempts: 1,
            lease: uuid::Uuid::nil(),
        };
        let outcome = sender.send(&claimed(o.delivery_id, o.body.clone())).await;
        all_sent &= matches!(outcome, Outcome::Sent { .. });
        println!("{}\t{}\t{}", o.provider, outcome.state(), outcome.answer());
        if matches!(outcome, Outcome::Sent { .. }) && p.kind.channel() == Channel::PagerDuty {
            // A request of its own (its own idempotency key), its answer printed too.
            let id = uuid::Uuid::new_v5(&o.delivery_id, b"resolve");
            let resolve = serde_json::json!({"event_action": "resolve", "dedup_key": o.body["dedup_key"]});
            let resolved = sender.send(&claimed(id, resolve)).await;
            all_sent &= matches!(resolved, Outcome::Sent { .. });
            println!("{} (resolve)\t{}\t{}", o.provider, resolved.state(), resolved.answer());
        }
    }
    Ok(if all_sent { exit::OK } else { exit::FAILURE })
}

/// `sitemon silence add|list|remove`: the silences `sitemon notify` reads from PostgreSQL (or,
/// without `postgres`, those `sitemon run` reads from its SQLite file).
pub(super) async fn run_silence(cmd: SilenceCommand) -> anyhow::Result<i32> {
    let path = match &cmd {
        SilenceCommand::Add(a) => &a.config.config,
        SilenceCommand::List(c) => &c.config,
        SilenceCommand::Remove(r) => &r.config.config,
    };
    let config_path = path.clone();
    let store = setup::Status::load_for(path, "silence")?;
    // Every pattern checked before anything connects.
    let sites = match &cmd {
        SilenceCommand::Add(a) => {
            let mut problems = Vec::new();
            let sites: Vec<Pattern> = a
                .sites
                .iter()
                .filter_map(|p| {
                    Pattern::new(p)
                        .map_err(|e| {
                            problems.push(Problem::new("--site", format!("`{p}` is not a site pattern: {e}")))
                        })
                        .ok()
                })
                .collect();
            if a.sites.is_empty() {
                problems.push(Problem::new(
                    "--site",
                    "name at least one site pattern (`--site '*'` for every site)",
                ));
            }
            if !problems.is_empty() {
                return Err(ConfigError::command_line(problems).into());
            }
            sites
        }
        _ => Vec::new(),
    };
    match store {
        setup::Status::Postgres(pg) => {
            let store = PgStore::connect(&pg)?;
            store.migrate().await?;
            silence(&store.deliveries(), cmd, &sites).await
        }
        setup::Status::Sqlite { path } => {
            // The file `sitemon run` made: a silence in a new file (another directory, another
            // host) would hold back nothing.
            anyhow::ensure!(
                path.exists(),
                "no database at {}: run `sitemon run -c {}` first (or run this where it runs)",
                path.display(),
                config_path.display()
            );
            silence(&SqliteStore::open(&path).await?.deliveries(), cmd, &sites).await
        }
    }
}

async fn silence<D: DeliveryStore>(
    deliveries: &D,
    cmd: SilenceCommand,
    sites: &[Pattern],
) -> anyhow::Result<i32> {
    match cmd {
        SilenceCommand::Add(a) => {
            let from = a.from.unwrap_or_else(chrono::Utc::now);
            let length = chrono::TimeDelta::from_std(a.length).context("--for is too long")?;
            let until = from.checked_add_signed(length).context("--for is too long")?;
            let id = uuid::Uuid::new_v4();
            deliveries
                .add_silence(&NewSilence { id, sites, window: (from, until), reason: &a.reason })
                .await?;
            println!("{id}");
            tracing::info!(%id, sites = ?a.sites, %from, %until, reason = a.reason, "silence added");
        }
        SilenceCommand::List(_) => {
            print!("{}", ui::silences_table(&deliveries.silences(chrono::Utc::now()).await?))
        }
        SilenceCommand::Remove(r) => {
            anyhow::ensure!(deliveries.remove_silence(r.id).await?, "no silence {}", r.id);
            tracing::info!(id = %r.id, "silence removed");
        }
    }
    Ok(exit::OK)
}
