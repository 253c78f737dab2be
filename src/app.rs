//! The composition root: the only place that names concrete adapters and wires them into the
//! producer and consumer runners.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::{Command, ConsumerArgs, ProducerArgs};
use crate::config::{self, Config, ConfigError, Problem};
use crate::consumer::{self, ConsumerOptions};
use crate::kafka::{KafkaFeed, KafkaPublisher};
use crate::probe::HyperProbe;
use crate::producer::{self, ProducerOptions};
use crate::shutdown;
use crate::store::PgStore;

/// Loads the config and checks that it has what `command` needs. Pure apart from reading the
/// file: nothing is contacted before this has passed.
fn load(path: &Path, needs: &[&str], command: &str) -> Result<Config, ConfigError> {
    let cfg = config::load_file(path)?;
    let mut problems = Vec::new();
    for section in needs {
        let missing = match *section {
            "sites" => cfg.sites.is_empty(),
            "kafka" => cfg.kafka.is_none(),
            "postgres" => cfg.postgres.is_none(),
            _ => false,
        };
        if missing {
            problems.push(Problem {
                path: (*section).to_owned(),
                message: format!("missing: `sitemon {command}` needs this section"),
            });
        }
    }
    if problems.is_empty() { Ok(cfg) } else { Err(ConfigError { file: path.to_owned(), problems }) }
}

/// Runs one subcommand to completion. Config problems come back as [`ConfigError`].
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Producer(args) => run_producer(args).await,
        Command::Consumer(args) => run_consumer(args).await,
        Command::Migrate(args) => {
            let cfg = load(&args.config, &["postgres"], "migrate")?;
            let store = PgStore::connect(cfg.postgres.as_ref().expect("checked by load"))?;
            store.migrate().await.context("applying migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}

async fn run_producer(args: ProducerArgs) -> anyhow::Result<()> {
    let cfg = load(&args.config.config, &["sites", "kafka"], "producer")?;
    let kafka = cfg.kafka.as_ref().expect("checked by load");
    let probe = Arc::new(HyperProbe::new(&cfg.region).context("setting up TLS")?);
    let publisher = Arc::new(KafkaPublisher::new(kafka).context("creating the Kafka producer")?);
    tracing::info!(sites = cfg.sites.len(), brokers = %kafka.bootstrap_servers, topic = %kafka.topic, region = %cfg.region, "producer starting");
    let opts = ProducerOptions {
        once: args.once,
        max_concurrency: args.max_concurrency,
        grace: args.grace,
        region: cfg.region.clone(),
    };
    let report = producer::run(cfg.sites, probe, publisher, opts, shutdown::on_signals()).await;
    tracing::info!(published = report.published, failed = report.failed, "producer stopped");
    anyhow::ensure!(report.failed == 0, "{} results could not be published", report.failed);
    Ok(())
}

async fn run_consumer(args: ConsumerArgs) -> anyhow::Result<()> {
    let cfg = load(&args.config.config, &["kafka", "postgres"], "consumer")?;
    let kafka = cfg.kafka.as_ref().expect("checked by load");
    let store = PgStore::connect(cfg.postgres.as_ref().expect("checked by load"))?;
    store.migrate().await.context("applying migrations")?;
    let mut feed = KafkaFeed::new(kafka).context("creating the Kafka consumer")?;
    tracing::info!(brokers = %kafka.bootstrap_servers, topic = %kafka.topic, group = %kafka.group_id, "consumer starting");
    let opts = ConsumerOptions {
        batch_size: cfg.consumer.batch_size,
        batch_wait: cfg.consumer.batch_wait,
        exit_when_idle: args.exit_when_idle,
    };
    let report = consumer::run(&mut feed, &store, &opts, shutdown::on_signals()).await?;
    tracing::info!(stored = report.stored, dead_letters = report.dead_letters, "consumer stopped");
    Ok(())
}
