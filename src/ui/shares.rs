//! `status`'s lines on a region's group of producers: which producer holds which partitions of
//! the sites topic, or that nobody does (the region's sites are then not being checked).

use std::fmt::Write;

use crate::kafka::Member;

/// The group's members and their partitions, one line each, under a heading line; `state` is the
/// group's (a rebalance under way is said, not taken for nobody).
pub fn producer_shares(region: &str, group: &str, topic: &str, state: &str, members: &[Member]) -> String {
    let mut out = format!("producers of region {region} (group {group} on {topic}): {}", members.len());
    if state != "Stable" {
        let _ = write!(out, ", {state}");
    }
    out.push('\n');
    match state {
        "Empty" | "Dead" => {
            out.push_str("  none: no producer holds the region's sites, so they are not being checked\n")
        }
        "Stable" => {}
        "" => out.push_str("  the brokers did not say which producer holds what\n"),
        _ => out.push_str("  a rebalance is under way: who holds which partitions is known once it ends\n"),
    }
    if state != "Stable" {
        for m in members {
            let _ = writeln!(out, "  {} ({})", m.client_id, m.host);
        }
        return out;
    }
    for m in members {
        let list = m.partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
        let _ = writeln!(out, "  {} ({}): {} partitions: {list}", m.client_id, m.host, m.partitions.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_with_its_partitions_and_a_word_when_there_is_none() {
        let m = |id: &str, ps: &[i32]| Member {
            client_id: id.into(),
            host: "10.0.0.5".into(),
            partitions: ps.to_vec(),
        };
        let text = producer_shares("eu", "g", "t", "Stable", &[m("a", &[0, 3]), m("b", &[])]);
        assert_eq!(
            text,
            "producers of region eu (group g on t): 2\n  a (10.0.0.5): 2 partitions: 0, 3\n  b (10.0.0.5): 0 partitions: \n"
        );
        assert!(producer_shares("eu", "g", "t", "Empty", &[]).contains("not being checked"));
        let moving = producer_shares("eu", "g", "t", "PreparingRebalance", &[]);
        assert!(
            moving.contains(", PreparingRebalance") && moving.contains("rebalance is under way"),
            "{moving}"
        );
        assert!(!moving.contains("not being checked"), "{moving}");
        let moving = producer_shares("eu", "g", "t", "CompletingRebalance", &[m("a", &[])]);
        assert!(moving.ends_with("  a (10.0.0.5)\n"), "no partition count while they move: {moving}");
    }
}
