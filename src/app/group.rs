//! `sitemon producer` with `kafka.sites_topic`: the producer as a member of its region's group on
//! the sites topic. Wires the group (`kafka::SiteGroup`) to the producer's reloads through the
//! probe, which prepares each new share's TLS settings first; and `status`'s view of the group.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::config::KafkaConfig;
use crate::kafka::{SiteGroup, group_members};
use crate::probe::HyperProbe;
use crate::producer::{self, NewList, Progress};
use crate::setup::Fleet;
use crate::ui;

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
        while let Some(mut list) = lists.recv().await {
            if let Err(errors) = probe.prepare(&list.sites) {
                let mut unusable = vec![false; list.sites.len()];
                for e in errors {
                    tracing::error!(site = %list.sites[e.site].id, problem = %e.message, "tls_ca_file: this producer leaves the site out");
                    unusable[e.site] = true;
                }
                let mut left_out = unusable.into_iter();
                list.sites.retain(|_| !left_out.next().unwrap_or(false));
                if let Err(errors) = probe.prepare(&list.sites) {
                    tracing::error!(
                        problems = errors.len(),
                        "preparing the probe for the sites topic's list failed"
                    );
                }
            }
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
        Ok(Ok(members)) => ui::producer_shares(&fleet.region, &group, &fleet.topic, &members),
        Ok(Err(e)) => format!("producers of region {}: the brokers did not say ({e})\n", fleet.region),
        Err(e) => format!("producers of region {}: {e}\n", fleet.region),
    }
}
