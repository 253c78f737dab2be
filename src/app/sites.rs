//! `sitemon sites apply|diff|list`: the site list on the compacted sites topic — a list checked
//! as `config check` checks it, compared with what the topic holds, and only the changes
//! published.

use crate::cli::{SitesCommand, SitesFileArgs};
use crate::config::{self, SiteDefinition};
use crate::exit;
use crate::kafka::SitesTopic;
use crate::setup;
use crate::ui::{SiteChanges, sites_table};

pub async fn run_sites(cmd: SitesCommand) -> anyhow::Result<i32> {
    match cmd {
        SitesCommand::Apply(a) => {
            let (topic, wanted) = load(&a.list, "sites apply")?;
            let current = topic.read().await?;
            let changes = SiteChanges::between(current.as_ref().unwrap_or(&Default::default()), &wanted);
            print!("{}", changes.render());
            if changes.is_empty() {
                return Ok(exit::OK);
            }
            if current.is_none() {
                topic.create(a.partitions).await?;
            }
            let records = changes.records();
            topic.publish(&records).await?;
            println!("published {} changes to {}", records.len(), topic.name());
            tracing::info!(topic = topic.name(), changes = records.len(), "site list applied");
            Ok(exit::OK)
        }
        SitesCommand::Diff(a) => {
            let (topic, wanted) = load(&a, "sites diff")?;
            let current = topic.read().await?.unwrap_or_default();
            print!("{}", SiteChanges::between(&current, &wanted).render());
            Ok(exit::OK)
        }
        SitesCommand::List(a) => {
            let s = setup::SitesTopic::load(&a.config.config, "sites list")?;
            let state = SitesTopic::new(&s.kafka, &s.topic).read().await?.unwrap_or_default();
            if a.json {
                let all: serde_json::Map<String, serde_json::Value> = state
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::from_slice(v).unwrap_or(serde_json::Value::Null)))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", sites_table(&state));
            }
            Ok(exit::OK)
        }
    }
}

/// The topic of the config and the list of the file, both checked: every problem of both at
/// once (64).
fn load(a: &SitesFileArgs, command: &str) -> anyhow::Result<(SitesTopic, Vec<SiteDefinition>)> {
    let setup = setup::SitesTopic::load(&a.config.config, command);
    let list = config::read_site_list(&a.config.config, &a.file);
    match (setup, list) {
        (Ok(s), Ok(wanted)) => Ok((SitesTopic::new(&s.kafka, &s.topic), wanted)),
        (Err(mut e), Err(more)) => {
            e.problems.extend(more.problems);
            Err(e.into())
        }
        (Err(e), _) | (_, Err(e)) => Err(e.into()),
    }
}
