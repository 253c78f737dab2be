//! `sitemon producer` with `kafka.sites_topic`: the producer as a member of its region's group on
//! the sites topic. Wires the group (`kafka::SiteGroup`) to the producer's reloads through the
//! probe, which prepares each new share's TLS settings first; and `status`'s view of the group.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::config::KafkaConfig;
use crate::domain::TlsOptions;
use crate::kafka::{SiteGroup, group_members};
use crate::probe::HyperProbe;
use crate::producer::{self, NewList, Progress};
use crate::setup::Fleet;
use crate::ui;

/// `list` with the probe prepared for it; a site whose TLS setting cannot be used (its
/// `tls_ca_file` missing or not a CA here) is logged and left out, with every other site of that
/// setting.
fn usable(probe: &HyperProbe, mut list: NewList) -> NewList {
    let Err(errors) = probe.prepare(&list.sites) else { return list };
    let failed: Vec<TlsOptions> = errors
        .into_iter()
        .map(|e| {
            let site = &list.sites[e.site];
            tracing::error!(site = %site.id, problem = %e.message, "tls_ca_file: this producer leaves out every site with this TLS setting");
            site.tls.clone()
        })
        .collect();
    list.sites.retain(|s| !failed.contains(&s.tls));
    if let Err(errors) = probe.prepare(&list.sites) {
        tracing::error!(problems = errors.len(), "preparing the probe for the sites topic's list failed");
    }
    list
}

/// The consumer group of a region's producers on the sites topic.
pub fn group_id(region: &str) -> String {
    format!("sitemon-producers-{region}")
}

/// Joins the region's group on `topic`; each share it hands over reaches the producer through
/// the returned reloads once the probe prepared its TLS settings (a site whose `tls_ca_file` this
/// producer cannot use is logged and left out). SIGHUP has nothing to reload: it is logged.
pub fn join(
    kafka: &KafkaConfig,
    topic: &str,
    region: &str,
    probe: Arc<HyperProbe>,
    progress: Arc<Progress>,
    mut hangups: tokio::signal::unix::Signal,
) -> anyhow::Result<(producer::Reloads, SiteGroup)> {
    let (from_group, mut lists) = mpsc::channel::<NewList>(1);
    let (to_producer, reloads) = mpsc::channel(1);
    let group = SiteGroup::join(kafka, topic, &group_id(region), progress, from_group)
        .context("joining the producers' group on the sites topic")?;
    tokio::spawn(async move {
        while let Some(list) = lists.recv().await {
            // Off the runtime's threads: a CA file is read from disk.
            let probe = probe.clone();
            let Ok(list) = tokio::task::spawn_blocking(move || usable(&probe, list)).await else { return };
            if to_producer.send(list).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: the sites come from the sites topic; `sitemon sites apply` changes them");
        }
    });
    Ok((reloads.into(), group))
}

/// `status`'s lines on the region's group of producers; a note instead when the brokers do not
/// answer (the store's status still follows).
pub async fn shares(fleet: &Fleet) -> String {
    let group = group_id(&fleet.region);
    let (kafka, g, topic) = (fleet.kafka.clone(), group.clone(), fleet.topic.clone());
    match tokio::task::spawn_blocking(move || group_members(&kafka, &g, &topic)).await {
        Ok(Ok((state, members))) => {
            ui::producer_shares(&fleet.region, &group, &fleet.topic, &state, &members)
        }
        Ok(Err(e)) => format!("producers of region {}: the brokers did not say ({e})\n", fleet.region),
        Err(e) => format!("producers of region {}: {e}\n", fleet.region),
    }
}
