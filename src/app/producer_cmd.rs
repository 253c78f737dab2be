//! `sitemon producer`: the config's sites (or, with `kafka.sites_topic`, its region's share of the
//! sites topic) checked and published to Kafka until stopped, or once with `--once`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::{
    ensure_complete, group, log_report, ops, producer_options, reloads, warn_if_region_is_host_name,
};
use crate::cli::ProducerArgs;
use crate::config::{self, Problem};
use crate::exit;
use crate::kafka::KafkaPublisher;
use crate::probe;
use crate::producer;
use crate::readiness;
use crate::registry::{CHECK_RESULT_SCHEMA, RegistryClient, register_schema};
use crate::reload;
use crate::setup;
use crate::shutdown;

pub(super) async fn run_producer(args: ProducerArgs, listen: Option<SocketAddr>) -> anyhow::Result<i32> {
    let hangups = reload::hangups().context("installing the SIGHUP handler")?;
    let setup::Producer { config: mut cfg, kafka } = setup::Producer::load(&args.config.config)?;
    warn_if_region_is_host_name(&cfg);
    let kafka = &kafka;
    let health = ops(listen, "starting").await?;
    let sites = cfg.take_own_sites();
    let probe = Arc::new(probe::for_config(&args.config.config, &cfg, &sites)?);
    let opts = producer_options(&cfg, args.once, args.grace, false);
    let group_topic = kafka.sites_topic.as_deref();
    if let (true, Some(_)) = (args.once, group_topic) {
        let why = "`--once` checks the config's own sites; the producers of a group on the sites topic run until stopped";
        return Err(probe::located(&args.config.config, vec![Problem::new("kafka.sites_topic", why)]).into());
    }
    // SIGHUP reloads from here on, also while the schema is being registered; a group member has
    // nothing to reload (it joins once it can publish).
    let (file_reloads, hangups) = match group_topic {
        _ if args.once => (Some(producer::Reloads::none()), None),
        Some(_) => (None, Some(hangups)),
        None => {
            let load = |p: &Path| setup::Producer::load(p).map(|s| s.config);
            let (file, sites_file) = (&args.config.config, cfg.sites_file.clone());
            (Some(reloads(file, args.watch, sites_file, load, probe.clone(), hangups)?), None)
        }
    };
    let mut publisher =
        KafkaPublisher::new(kafka).map_err(|e| e.for_command(&args.config.config, "producer"))?;
    let stop = shutdown::on_signals();
    if let Some(sr) = &cfg.schema_registry {
        let registry = RegistryClient::new(sr)?;
        health.not_ready("registering the schema with the schema registry");
        let registered = register_schema(&registry, &kafka.topic, CHECK_RESULT_SCHEMA, &stop)
            .await
            .context("no checks were run")?;
        let Some(id) = registered else {
            tracing::info!("stopped before the schema was registered");
            return Ok(exit::OK);
        };
        publisher = publisher.with_schema_id(id);
    }
    let publisher = Arc::new(publisher);
    let (reloads, group) = match (file_reloads, group_topic.zip(hangups)) {
        (Some(reloads), _) => (reloads, None),
        (None, Some((topic, hangups))) => {
            let progress = opts.progress.clone();
            let (reloads, group) = group::join(kafka, topic, &cfg.region, probe.clone(), progress, hangups)?;
            (reloads, Some(group))
        }
        (None, None) => (producer::Reloads::none(), None),
    };
    tracing::info!(sites = sites.len(), brokers = %kafka.bootstrap_servers, topic = %kafka.topic, region = %cfg.region, sites_topic = group_topic, "producer starting");
    let roster = producer::Roster::new(sites, &opts);
    config::release_parse_memory();
    // Ready while a broker is reachable, for as long as the producer runs.
    let report = tokio::select! {
        report = producer::run(roster, probe, publisher.clone(), opts, stop, reloads) => report,
        never = readiness::follow_publisher(&*publisher, &health) => match never {},
    };
    if let Some(group) = group {
        // The producer has stopped: the next owners of its sites start where it ended.
        group.leave().await;
    }
    log_report(&report, "producer stopped");
    ensure_complete(&report)?;
    Ok(exit::OK)
}
