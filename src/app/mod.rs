//! The composition root: the only place that names concrete adapters and wires them into the
//! producer and consumer runners (the alerting commands in `alerts.rs`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::CommandFactory;
use tokio_util::sync::CancellationToken;

mod alerts;
mod group;
mod producer_cmd;
mod sites;

use crate::cli::{CheckArgs, Cli, Command, ConfigCommand, ConsumerArgs, ReportArgs, RunArgs, StatusArgs};
use crate::config::{self, Config, ConfigError, Problem};
use crate::consumer::{self, ConsumerOptions};
use crate::events::{EventPublisher, EventReport, LogSink};
use crate::exit;
use crate::health::Health;
use crate::kafka::{ClientSetupError, KafkaEventSink, KafkaFeed};
use crate::memory;
use crate::ops_server;
use crate::ports::{EventOutbox, NoRegistry, ReportSource, SiteProbe};
use crate::probe::{self, HyperProbe};
use crate::producer::{self, ProducerOptions, ProducerReport};
use crate::registry::{EVENT_SCHEMA, RegistryClient, register_schema};
use crate::reload;
use crate::setup;
use crate::shutdown;
use crate::store::{PgOutbox, PgStore, SqliteStore};
use crate::ui;

/// Exit code of `sitemon check` when the site is down.
pub const CHECK_DOWN: i32 = 2;

/// Runs one subcommand to completion and returns its exit code. Config problems come back as
/// [`ConfigError`].
pub async fn run(command: Command, listen: Option<SocketAddr>) -> anyhow::Result<i32> {
    match command {
        Command::Producer(args) => producer_cmd::run_producer(args, listen).await,
        Command::Consumer(args) => run_consumer(args, listen).await,
        Command::Notify(args) => alerts::run_notify(args, listen).await,
        Command::Silence(cmd) => alerts::run_silence(cmd).await,
        Command::Migrate(args) => {
            let setup = setup::Migrate::load(&args.config)?;
            let store = PgStore::connect(&setup.postgres)?;
            store.migrate().await?;
            tracing::info!("migrations applied");
            Ok(exit::OK)
        }
        Command::Run(args) => run_embedded(args, listen).await,
        Command::Check(args) => run_check(args).await,
        Command::Status(args) => run_status(args).await,
        Command::Report(args) => run_report(args).await,
        Command::Config(ConfigCommand::Check(args)) => {
            let cfg = setup::Checked::load(&args.config)?.config;
            // The sites' CA files, read as the producer would (nothing is contacted).
            probe::for_config(&args.config, &cfg, &cfg.sites)?;
            println!(
                "{}: ok ({} sites; kafka {}; postgres {})",
                args.config.display(),
                cfg.sites.len(),
                if cfg.kafka.is_some() { "configured" } else { "not configured" },
                if cfg.postgres.is_some() { "configured" } else { "not configured" },
            );
            Ok(exit::OK)
        }
        Command::Sites(cmd) => sites::run_sites(cmd).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "sitemon", &mut std::io::stdout());
            Ok(exit::OK)
        }
    }
}

/// The reload input of the producer: SIGHUP (and with `watch`, a change of the config file or
/// the `sites_file` of the config last loaded) reads the site list again through `load`, then
/// prepares the probe for it; a list that fails either is reported and the running one kept.
fn reloads(
    file: &Path,
    watch: bool,
    sites_file: Option<PathBuf>,
    load: fn(&Path) -> Result<Config, ConfigError>,
    probe: Arc<HyperProbe>,
    hangups: tokio::signal::unix::Signal,
) -> anyhow::Result<producer::Reloads> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let path = file.to_owned();
    let load_sites = move || {
        let mut cfg = load(&path)?;
        let sites = cfg.take_own_sites();
        config::release_parse_memory();
        if let Err(errors) = probe.prepare(&sites) {
            let problems =
                errors.into_iter().map(|e| probe::tls_problem(&sites, e, probe::inline(&cfg))).collect();
            return Err(probe::located(&path, problems));
        }
        // `--watch` follows the `sites_file` this config names, wherever it now points.
        let files = std::iter::once(path.clone()).chain(cfg.sites_file.take()).collect();
        Ok(reload::Loaded { sites, files })
    };
    let watched =
        if watch { std::iter::once(file.to_owned()).chain(sites_file).collect() } else { Vec::new() };
    reload::spawn(load_sites, watched, tx, hangups).context("watching the config file")?;
    Ok(rx.into())
}

/// The region is the identity of a producer's results (check ids, incidents per region): a host
/// name is one only by accident — two producers meant as one location get two, and a container
/// gets a new one at every start.
fn warn_if_region_is_host_name(cfg: &Config) {
    if cfg.region_from_host {
        tracing::warn!(
            region = %cfg.region,
            "no `region:` in the config: results are labelled with the host name; set `region:` explicitly \
             when several producers check the same sites (a container's host name changes at every start)"
        );
    }
}

fn producer_options(cfg: &Config, once: bool, grace: Duration, log_results: bool) -> ProducerOptions {
    ProducerOptions {
        once,
        max_concurrency: cfg.producer.max_concurrency,
        per_host_concurrency: cfg.producer.per_host_concurrency,
        grace,
        region: cfg.region.clone(),
        log_results,
        max_in_flight: cfg.producer.max_in_flight,
        progress: Default::default(),
    }
}

fn consumer_options(cfg: &Config, exit_when_idle: Option<Duration>, grace: Duration) -> ConsumerOptions {
    ConsumerOptions {
        batch_size: cfg.consumer.batch_size,
        batch_wait: cfg.consumer.batch_wait,
        exit_when_idle,
        retention: cfg.retention,
        max_clock_skew: cfg.consumer.max_clock_skew,
        grace,
    }
}

/// Starts the ops endpoint when asked for; the health it reports starts as `starting`.
async fn ops(listen: Option<SocketAddr>, starting: &str) -> anyhow::Result<Arc<Health>> {
    let health = Arc::new(Health::starting(starting));
    if let Some(addr) = listen {
        let metrics = ops_server::install_metrics()?;
        let bound = ops_server::serve(addr, health.clone(), metrics)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        tracing::info!(%bound, "serving /healthz, /readyz and /metrics");
    }
    Ok(health)
}

fn log_report(report: &ProducerReport, message: &str) {
    tracing::info!(
        slots = report.slots,
        published = report.published,
        failed = report.failed,
        missed = report.missed,
        abandoned = report.abandoned,
        "{message}"
    );
}

/// Exit 1 when a slot's result was not acknowledged.
fn ensure_complete(report: &ProducerReport) -> anyhow::Result<()> {
    if let Some(reason) = report.refused.as_ref().filter(|_| !report.complete()) {
        let n = report.failed + report.abandoned;
        anyhow::bail!("{reason}; {n} result{} not published", if n == 1 { " was" } else { "s were" });
    }
    anyhow::ensure!(
        report.complete(),
        "{} results were not acknowledged and {} slots were abandoned before the grace period ended",
        report.failed,
        report.abandoned
    );
    Ok(())
}

async fn run_consumer(args: ConsumerArgs, listen: Option<SocketAddr>) -> anyhow::Result<i32> {
    let setup::Consumer { config: cfg, kafka, postgres } = setup::Consumer::load(&args.config.config)?;
    let kafka = &kafka;
    let health = ops(listen, "starting").await?;
    let store = PgStore::connect(&postgres)?.judging(cfg.consumer.judging());
    store.migrate().await?;
    let mut feed = KafkaFeed::new(kafka)
        .map_err(|e| ClientSetupError::new(e, kafka).for_command(&args.config.config, "consumer"))?;
    let sink =
        KafkaEventSink::new(kafka).map_err(|e| e.for_command(&args.config.config, "event producer"))?;
    let events_registry = cfg.schema_registry.as_ref().map(RegistryClient::new).transpose()?;
    tracing::info!(brokers = %kafka.bootstrap_servers, topic = %kafka.topic, group = %kafka.group_id, events_topic = %kafka.events_topic, "consumer starting");
    let opts = consumer_options(&cfg, args.exit_when_idle, args.grace);
    let stop = shutdown::on_signals();
    let deadline = shutdown::deadline(stop.clone(), args.grace);
    // The incident events the store writes to its outbox go out alongside.
    let publisher = EventPublisher::default();
    let events =
        tokio::spawn(publish_events(store.outbox(), sink, events_registry, publisher.clone(), stop.clone()));
    let report = match &cfg.schema_registry {
        Some(sr) => {
            let registry = RegistryClient::new(sr)?;
            tracing::info!(
                registry = registry.url(),
                "writer schemas of registry-framed records fetched from the registry"
            );
            consumer::run(&mut feed, &store, &registry, &opts, &health, stop.clone()).await?
        }
        None => consumer::run(&mut feed, &store, &NoRegistry, &opts, &health, stop.clone()).await?,
    };
    let wound_down =
        consumer::wind_down(feed, &stop, deadline, args.grace, |end| publisher.finish(events, end)).await;
    tracing::info!(
        stored = report.stored,
        dead_letters = report.dead_letters,
        unstored = report.unstored,
        "consumer stopped"
    );
    wound_down?;
    anyhow::ensure!(
        report.complete(),
        "{} records were not stored before the grace period ended; the group reads them again",
        report.unstored
    );
    Ok(exit::OK)
}

/// The consumer's incident events to Kafka: with a schema registry, the event schema is
/// registered under `<events_topic>-value` first (asked again while the registry cannot be
/// reached; a refusal stops the consumer, exit 1). Storing goes on meanwhile: the events wait
/// in the outbox.
async fn publish_events(
    outbox: PgOutbox,
    mut sink: KafkaEventSink,
    registry: Option<RegistryClient>,
    publisher: EventPublisher,
    consumer_stop: CancellationToken,
) -> anyhow::Result<EventReport> {
    if let Some(registry) = registry {
        let topic = sink.topic().to_owned();
        match register_schema(&registry, &topic, EVENT_SCHEMA, &publisher.stop).await {
            Ok(Some(id)) => sink = sink.with_schema_id(id),
            Ok(None) => return Ok(EventReport { published: 0, left: outbox.unpublished().await.ok() }),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "incident events cannot be published: stopping");
                consumer_stop.cancel();
                return Err(e.context("incident events were not published; they stay in the outbox"));
            }
        }
    }
    Ok(publisher.run(&outbox, &sink).await)
}

/// Producer and consumer in one process, joined by a bounded channel, storing in SQLite.
async fn run_embedded(args: RunArgs, listen: Option<SocketAddr>) -> anyhow::Result<i32> {
    let hangups = reload::hangups().context("installing the SIGHUP handler")?;
    let mut cfg = setup::Embedded::load(&args.config.config)?.config;
    warn_if_region_is_host_name(&cfg);
    let sites = cfg.take_own_sites();
    // Before the store is created: a CA file that cannot be used is a config problem.
    let probe = Arc::new(probe::for_config(&args.config.config, &cfg, &sites)?);
    let health = ops(listen, "starting").await?;
    let store = Arc::new(
        SqliteStore::open(&cfg.sqlite.path)
            .await
            .with_context(|| format!("opening {}", cfg.sqlite.path.display()))?
            .judging(cfg.consumer.judging()),
    );
    let (publisher, mut feed) = memory::channel(10_000);
    let interactive = std::io::stdout().is_terminal() && !args.no_table;
    tracing::info!(sites = sites.len(), db = %cfg.sqlite.path.display(), "sitemon run starting");

    let opts = consumer_options(&cfg, None, args.grace);
    // The consumer ends when the producer is gone and the channel is drained.
    let consumer_store = store.clone();
    let consumer_health = health.clone();
    let consumer = tokio::spawn(async move {
        consumer::run(
            &mut feed,
            &*consumer_store,
            &NoRegistry,
            &opts,
            &consumer_health,
            CancellationToken::new(),
        )
        .await
    });
    // No Kafka here: incident events are logged (one line each) and marked published; with a
    // `notify` section they are planned into the file's deliveries first, sent from there.
    let event_publisher = EventPublisher::default();
    let alerts = match &cfg.notify {
        Some(n) => Some(alerts::embedded_alerts(n, &store).await?),
        None => None,
    };
    let events = {
        let (store, publisher) = (store.clone(), event_publisher.clone());
        match &alerts {
            Some(a) => {
                let sink = a.sink(LogSink);
                tokio::spawn(async move { Ok(publisher.run(&*store, &sink).await) })
            }
            None => tokio::spawn(async move { Ok(publisher.run(&*store, &LogSink).await) }),
        }
    };
    let shutdown = shutdown::on_signals();
    // Producer and consumer together stop within `--grace` of the signal.
    let deadline = shutdown::deadline(shutdown.clone(), args.grace);
    let table = interactive.then(|| {
        let (store, stop) = (store.clone(), shutdown.clone());
        let title = format!("sitemon: {} sites, storing in {}", sites.len(), cfg.sqlite.path.display());
        tokio::spawn(async move { ui::live_table(&*store, Duration::from_secs(1), &title, stop).await })
    });
    let popts = producer_options(&cfg, false, args.grace, !interactive);
    let roster = producer::Roster::new(sites, &popts);
    config::release_parse_memory();
    let load = |p: &Path| setup::Embedded::load(p).map(|s| s.config);
    let reloads =
        reloads(&args.config.config, args.watch, cfg.sites_file.clone(), load, probe.clone(), hangups)?;
    let report = producer::run(roster, probe, Arc::new(publisher), popts, shutdown, reloads).await;
    log_report(&report, "producer stopped");
    // The producer returns only after the signal, so the deadline is known by now.
    let deadline = deadline.await.context("the shutdown deadline task failed")?;
    let stored = tokio::time::timeout_at(deadline, consumer)
        .await
        .context("storing the last results took longer than the grace period")?
        .context("the consumer task failed")??;
    event_publisher.finish(events, deadline).await?;
    if let Some(a) = alerts {
        a.finish(deadline).await;
    }
    if let Some(t) = table {
        let _ = t.await;
    }
    tracing::info!(checked = report.published, stored = stored.stored, "sitemon run stopped");
    ensure_complete(&report)?;
    Ok(exit::OK)
}

async fn run_check(args: CheckArgs) -> anyhow::Result<i32> {
    let site = config::command_line_site(&args.url, &args.method, &args.timeout, args.pattern.as_deref())?;
    let region = gethostname::gethostname().to_string_lossy().into_owned();
    let probe =
        probe::for_sites(Path::new(config::COMMAND_LINE), &region, std::slice::from_ref(&site), true)?;
    let result = probe.check(&site, chrono::Utc::now()).await;
    if args.json {
        println!("{}", ui::check_json(&result));
    } else {
        print!("{}", ui::check_text(&result));
    }
    Ok(if result.is_up() { exit::OK } else { CHECK_DOWN })
}

async fn run_status(args: StatusArgs) -> anyhow::Result<i32> {
    let query = args.query()?;
    let rows = match setup::Status::load(&args.config.config)? {
        setup::Status::Postgres(pg) => {
            let store = PgStore::connect(&pg)?;
            store.reach().await?;
            let mut rows = ui::Overview::read(&store).await.context("reading the status from PostgreSQL")?;
            rows.read_alerts(&store.deliveries()).await;
            rows
        }
        setup::Status::Sqlite { path } => {
            let path = &path;
            anyhow::ensure!(
                path.exists(),
                "no database at {}: run `sitemon run -c {}` first",
                path.display(),
                args.config.config.display()
            );
            let store = SqliteStore::open(path).await?;
            let mut rows = ui::Overview::read(&store).await.context("reading the status from SQLite")?;
            rows.read_alerts(&store.deliveries()).await;
            rows
        }
    };
    if args.json {
        println!("{}", ui::status_json(&rows, &query, chrono::Utc::now()));
    } else {
        if let Some(fleet) = setup::Fleet::load(&args.config.config)? {
            print!("{}", group::shares(&fleet).await);
        }
        print!("{}", ui::status_table(&rows, &query, chrono::Utc::now()));
    }
    Ok(exit::OK)
}

/// History rows `sitemon report` reads per query.
const REPORT_PAGE: u32 = 5_000;

/// `sitemon report`: the window checked (exit 64 when empty), then the store `status` would
/// read. A site without results in the window gives an empty report (zero counts, exit 0) and a
/// note on stderr.
async fn run_report(args: ReportArgs) -> anyhow::Result<i32> {
    let to = args.to.unwrap_or_else(chrono::Utc::now);
    let from = args.from.unwrap_or(to - chrono::Duration::hours(24));
    if from >= to {
        let message =
            format!("must be before --to ({} is not before {})", from.to_rfc3339(), to.to_rfc3339());
        let problems = vec![Problem::new("--from", message)];
        return Err(ConfigError::command_line(problems).into());
    }
    let req = ui::ReportRequest { site: args.site, from, to, page_size: REPORT_PAGE };
    let total = match setup::Report::load(&args.config.config)?.store {
        setup::Status::Postgres(pg) => {
            let store = PgStore::connect(&pg)?;
            store.reach().await?;
            report(&store, &req, args.format).await?
        }
        setup::Status::Sqlite { path } => {
            anyhow::ensure!(
                path.exists(),
                "no database at {}: run `sitemon run -c {}` first",
                path.display(),
                args.config.config.display()
            );
            report(&SqliteStore::open(&path).await?, &req, args.format).await?
        }
    };
    if total.checks() + total.missed == 0 {
        eprintln!(
            "note: no results for site `{}` from {} to {}; is the site name right?",
            req.site,
            from.to_rfc3339(),
            to.to_rfc3339()
        );
    }
    Ok(exit::OK)
}

async fn report<S: ReportSource>(
    source: &S,
    req: &ui::ReportRequest,
    format: ui::ReportFormat,
) -> anyhow::Result<crate::domain::Tally> {
    // No lock held across the awaits: other threads may log to stderr meanwhile.
    let (mut out, mut aside) = (std::io::BufWriter::new(std::io::stdout()), std::io::stderr());
    Ok(ui::write_report(source, req, format, chrono::Utc::now(), &mut out, &mut aside).await?)
}
