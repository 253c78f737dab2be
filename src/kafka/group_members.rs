//! Who holds which partitions of a consumer group, as the group's coordinator says (the
//! DescribeGroups answer, each member's assignment in Kafka's consumer protocol): for `status`,
//! the producers of a region and their share of the sites topic.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::util::Timeout;

use super::client::client_config;
use super::redacted_log::RedactedLog;
use super::sites_topic::Cause;
use crate::config::KafkaConfig;

/// One member of a group: its client id (a producer's names its host and process), the host the
/// broker sees, and its partitions of `topic`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub client_id: String,
    pub host: String,
    pub partitions: Vec<i32>,
}

/// How long the brokers may take to answer.
const ANSWER: Duration = Duration::from_secs(5);

/// The group's state as the coordinator says it (`Stable`, `PreparingRebalance`,
/// `CompletingRebalance`, `Empty`, `Dead`) and its members with their partitions of `topic`,
/// sorted by client id.
pub fn group_members(kafka: &KafkaConfig, group: &str, topic: &str) -> Result<(String, Vec<Member>), Cause> {
    let consumer: BaseConsumer<RedactedLog> = client_config(kafka, &[("group.id", "sitemon-status")])
        .create_with_context(RedactedLog::new(kafka))
        .map_err(Cause::from)?;
    let groups = consumer.fetch_group_list(Some(group), Timeout::After(ANSWER)).map_err(Cause::from)?;
    let found = groups.groups().iter().find(|g| g.name() == group);
    let state = found.map_or_else(|| "Dead".to_owned(), |g| g.state().to_owned());
    let mut members: Vec<Member> = found
        .into_iter()
        .flat_map(|g| g.members())
        .map(|m| Member {
            client_id: m.client_id().to_owned(),
            host: m.client_host().trim_start_matches('/').to_owned(),
            partitions: m.assignment().map(|a| partitions_of(a, topic)).unwrap_or_default(),
        })
        .collect();
    members.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok((state, members))
}

/// The partitions of `topic` in a consumer-protocol assignment (version, then an array of topics
/// each with an array of partitions, then user data); whatever does not parse is none.
fn partitions_of(mut b: &[u8], topic: &str) -> Vec<i32> {
    fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
        let (head, rest) = b.split_first_chunk::<N>()?;
        *b = rest;
        Some(*head)
    }
    let mut read = || -> Option<Vec<i32>> {
        take::<2>(&mut b)?;
        let topics = i32::from_be_bytes(take::<4>(&mut b)?);
        let mut out = Vec::new();
        for _ in 0..topics.max(0) {
            let len = i16::from_be_bytes(take::<2>(&mut b)?).max(0) as usize;
            let name = b.get(..len)?;
            b = &b[len..];
            let n = i32::from_be_bytes(take::<4>(&mut b)?);
            for _ in 0..n.max(0) {
                let p = i32::from_be_bytes(take::<4>(&mut b)?);
                if name == topic.as_bytes() {
                    out.push(p);
                }
            }
        }
        Some(out)
    };
    let mut out = read().unwrap_or_default();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = vec![0, 1];
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes());
        b
    }

    #[test]
    fn an_assignment_gives_the_partitions_of_its_topic() {
        let a = assignment(&[("other", &[1, 2]), ("sites", &[9, 0, 3])]);
        assert_eq!(partitions_of(&a, "sites"), [0, 3, 9]);
        assert_eq!(partitions_of(&a, "none"), Vec::<i32>::new());
        for cut in 0..a.len() {
            let _ = partitions_of(&a[..cut], "sites");
        }
        assert_eq!(partitions_of(&[0, 1, 0x7f, 0xff, 0xff, 0xff], "sites"), Vec::<i32>::new());
    }
}
