//! Producers sharing a region's sites through the sites topic, on the real broker: three
//! producers of one region over one sites topic; over a steady period every slot is checked and
//! stored exactly once; one is SIGKILLed and its sites are checked again by the others within
//! the session timeout plus one interval, its unchecked slots in the history as MISSED rows; a
//! fourth joins and takes a share while nobody restarts; `sites apply` adds and removes sites
//! under load. Throughout, no slot of any site is left without a row.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sitemon::domain::CheckStatus;
use sitemon::schedule::{next_slot_after, phase};

use crate::harness::{ONE_AT_A_TIME, Running, Setup, rows, spawn, topic_payloads, topic_records};
use crate::support::{self, sites, wait_for};

const SECOND: Duration = Duration::from_secs(1);
/// The producers' `session.timeout.ms` in this test.
const SESSION: Duration = Duration::from_secs(6);

fn list(names: &[String], addr: std::net::SocketAddr) -> String {
    let mut text = String::new();
    for n in names {
        text.push_str(&format!("- {{name: {n}, url: 'http://{addr}/ok', interval: 1s, timeout: 900ms}}\n"));
    }
    text
}

fn logs(producers: &[Running]) -> String {
    producers.iter().map(|p| p.log.lock().unwrap().clone()).collect::<Vec<_>>().join("\n----\n")
}

fn alive(r: &mut Running) -> bool {
    r.child.try_wait().expect("try_wait").is_none()
}

/// The number of sites the producer's last share had, once it took one.
fn share(r: &Running) -> Option<u64> {
    let log = r.log.lock().unwrap();
    let line = log.lines().rev().find(|l| l.contains("share sent to the scheduler"))?;
    crate::harness::logged_count(line, "sites")
}

async fn apply(cfg: &str, list: &str, s: &Setup) {
    let out = support::sitemon(
        &["sites", "apply", "-c", cfg, "-f", list, "--partitions", "12"],
        &s.env(),
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "sites apply: {}", support::describe(&out));
}

/// Each site's stored rows: slot → status; the slots of a run of missed slots a row carries
/// (1 s apart) as MISSED.
async fn history(db: &str) -> BTreeMap<String, BTreeMap<DateTime<Utc>, String>> {
    let mut c = support::connect(db).await;
    type Row = (String, DateTime<Utc>, String, Option<DateTime<Utc>>, Option<i32>);
    let all: Vec<Row> =
        sqlx::query_as("SELECT site_id, scheduled_at, status, missed_since, missed_slots FROM check_results")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let mut by_site: BTreeMap<String, BTreeMap<DateTime<Utc>, String>> = BTreeMap::new();
    for (site, at, status, since, n) in all {
        let rows = by_site.entry(site).or_default();
        if let (Some(since), Some(n)) = (since, n) {
            for k in 0..n {
                rows.entry(since + chrono::Duration::seconds(k.into())).or_insert_with(|| "MISSED".into());
            }
        }
        rows.insert(at, status);
    }
    by_site
}

/// The slots of `site` (1 s interval) in `[from, to]` that have no row.
fn holes(
    rows: Option<&BTreeMap<DateTime<Utc>, String>>,
    site: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut slot = next_slot_after(from - chrono::Duration::microseconds(1), SECOND, phase(site, SECOND));
    let mut missing = Vec::new();
    while slot <= to {
        if !rows.is_some_and(|r| r.contains_key(&slot)) {
            missing.push(slot);
        }
        slot += chrono::Duration::seconds(1);
    }
    missing
}

#[tokio::test(flavor = "multi_thread")]
async fn producers_share_a_region_through_the_sites_topic() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    let region = support::unique("group");
    let cfg = s.write(
        "c.yaml",
        &format!(
            "region: {region}\nkafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  topic: {topic}\n  \
             sites_topic: {topic}-sites\n  group_id: {region}-consumers\n  properties:\n    session.timeout.ms: 6000\n    \
             heartbeat.interval.ms: 1000\npostgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nconsumer:\n  batch_size: 50\n  \
             batch_wait: 100ms\n",
            topic = s.topic
        ),
    );
    let mut names: Vec<String> = (0..36).map(|i| format!("site-{i:02}")).collect();
    apply(&cfg, &s.write("sites.yaml", &list(&names, addr)), &s).await;

    let consumer = spawn(&["consumer", "-c", &cfg], &s.env());
    let mut producers: Vec<Running> = (0..3).map(|_| spawn(&["producer", "-c", &cfg], &s.env())).collect();
    let shared = wait_for(Duration::from_secs(90), || async {
        producers.iter().all(|p| share(p).is_some_and(|n| n > 0)).then_some(())
    })
    .await;
    assert!(shared.is_some(), "three producers did not each take a share:\n{}", logs(&producers));
    let total: u64 = producers.iter().filter_map(share).sum();
    let settled = wait_for(Duration::from_secs(30), || async {
        (producers.iter().filter_map(share).sum::<u64>() == 36).then_some(())
    })
    .await;
    assert!(settled.is_some(), "the shares do not add up to the 36 sites ({total}):\n{}", logs(&producers));

    // A steady period: the behaviour under test is traffic for this long with nothing changing.
    let steady_from = Utc::now() + chrono::Duration::seconds(1);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let steady_to = Utc::now() - chrono::Duration::seconds(1);

    // SIGKILL one: its partitions go to the others once the group misses it.
    producers[1].child.start_kill().expect("SIGKILL");
    let killed_at = Utc::now();
    let mut killed = producers.remove(1);
    let _ = killed.child.wait().await;
    let taken_over = wait_for(Duration::from_secs(60), || async {
        let h = history(&s.db).await;
        let after = |site: &String| {
            h.get(site)?
                .iter()
                .find(|(at, st)| **at > killed_at && st.as_str() == "SUCCESS")
                .map(|(at, _)| *at)
        };
        names.iter().map(after).collect::<Option<Vec<_>>>().map(|firsts| firsts.into_iter().max().unwrap())
    })
    .await
    .expect("the killed producer's sites were not checked again");
    let takeover = (taken_over - killed_at).to_std().unwrap();
    eprintln!("takeover after SIGKILL: {takeover:?}");
    assert!(
        takeover <= SESSION + SECOND + Duration::from_secs(3),
        "its sites were checked again only after {takeover:?}:\n{}",
        logs(&producers)
    );
    let stopped = producers.iter_mut().map(alive).filter(|a| !a).count();
    assert_eq!(stopped, 0, "a producer stopped:\n{}", logs(&producers));

    // A fourth joins: it takes a share, nobody restarts.
    producers.push(spawn(&["producer", "-c", &cfg], &s.env()));
    let joined = wait_for(Duration::from_secs(60), || async {
        share(&producers[2]).is_some_and(|n| n > 0).then_some(())
    })
    .await;
    assert!(joined.is_some(), "the fourth producer took no share:\n{}", logs(&producers));
    // `status` names the three members and their partitions: all twelve, each once.
    let shares = wait_for(Duration::from_secs(30), || async {
        let out = support::sitemon(&["status", "-c", &cfg], &s.env(), Duration::from_secs(30)).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut held: Vec<i32> = text
            .lines()
            .filter(|l| l.starts_with("  sitemon-producer-"))
            .flat_map(|l| l.rsplit_once("partitions: ").map(|(_, ps)| ps.to_owned()))
            .flat_map(|ps| ps.split(", ").filter_map(|p| p.parse().ok()).collect::<Vec<i32>>())
            .collect();
        held.sort_unstable();
        (text.contains(&format!("producers of region {region} (group sitemon-producers-{region}"))
            && held == (0..12).collect::<Vec<_>>()
            && text.lines().filter(|l| l.starts_with("  sitemon-producer-")).count() == 3)
            .then_some(text)
    })
    .await;
    assert!(shares.is_some(), "status does not show the three producers' shares");

    // `sites apply` under load: six sites go, six come.
    let removed: Vec<String> = names.drain(..6).collect();
    let added: Vec<String> = (0..6).map(|i| format!("new-{i:02}")).collect();
    names.extend(added.iter().cloned());
    apply(&cfg, &s.write("sites2.yaml", &list(&names, addr)), &s).await;
    let applied_at = Utc::now();
    let arrived = wait_for(Duration::from_secs(30), || async {
        let h = history(&s.db).await;
        added.iter().all(|n| h.get(n).is_some_and(|r| r.values().any(|st| st == "SUCCESS"))).then_some(())
    })
    .await;
    assert!(arrived.is_some(), "the added sites were not checked:\n{}", logs(&producers));
    let reached = (Utc::now() - applied_at).to_std().unwrap();
    eprintln!("sites apply → the added sites checked: {reached:?}");
    assert!(reached <= Duration::from_secs(10), "an applied change took {reached:?} to reach the producers");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = Utc::now() - chrono::Duration::seconds(2);

    for p in &producers {
        p.signal("-TERM");
    }
    for p in producers {
        let (code, log) = p.finish(Duration::from_secs(60)).await;
        assert_eq!(code, Some(0), "a producer's stop:\n{log}");
    }
    // Every record on the results topic is stored (repeats of a slot once).
    let records = topic_records(&s.topic);
    let payloads = topic_payloads(&s.topic, records as usize);
    let decoded: Vec<_> =
        payloads.iter().map(|p| sitemon::wire::decode(p).expect("a sitemon record")).collect();
    let distinct: std::collections::HashSet<_> = decoded.iter().map(|r| r.check_id).collect();
    let stored = wait_for(Duration::from_secs(60), || async {
        (rows(&s.db, "SELECT count(*) FROM check_results").await == distinct.len() as i64).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the consumer did not store the {} distinct results", distinct.len());
    drop(consumer);

    let h = history(&s.db).await;
    // The steady period: every slot checked once (one record on the topic) and stored once.
    let mut per_slot: HashMap<_, usize> = HashMap::new();
    for r in &decoded {
        if r.scheduled_at >= steady_from && r.scheduled_at <= steady_to {
            *per_slot.entry(r.check_id).or_default() += 1;
        }
    }
    assert!(per_slot.values().all(|n| *n == 1), "a slot of the steady period was published twice");
    for n in names.iter().chain(&removed).filter(|n| !added.contains(n)) {
        assert_eq!(
            holes(h.get(n), n, steady_from, steady_to),
            Vec::<DateTime<Utc>>::new(),
            "{n}: steady period"
        );
        let steady = h[n].range(steady_from..=steady_to);
        assert!(
            steady.clone().all(|(_, st)| st == "SUCCESS"),
            "{n}: steady period {:?}",
            steady.collect::<Vec<_>>()
        );
    }
    // No slot without a row, across the kill, the join and the apply.
    for n in names.iter().filter(|n| !added.contains(n)) {
        assert_eq!(
            holes(h.get(n), n, steady_from, end),
            Vec::<DateTime<Utc>>::new(),
            "{n}: a slot nobody recorded"
        );
    }
    for n in &removed {
        let last = applied_at - chrono::Duration::seconds(1);
        assert_eq!(
            holes(h.get(n), n, steady_from, last),
            Vec::<DateTime<Utc>>::new(),
            "{n} before its removal"
        );
        let late = h[n].keys().filter(|at| **at > applied_at + chrono::Duration::seconds(3)).count();
        assert_eq!(late, 0, "{n} was checked after its removal");
    }
    for n in &added {
        let first = *h[n].keys().next().unwrap();
        assert_eq!(holes(h.get(n), n, first, end), Vec::<DateTime<Utc>>::new(), "{n} after it was added");
    }
    // The killed producer's unchecked slots are in the history, as MISSED rows around the kill.
    let missed: Vec<(String, DateTime<Utc>)> = h
        .iter()
        .flat_map(|(n, r)| {
            r.iter()
                .filter(|(_, st)| *st == CheckStatus::Missed.as_str())
                .map(move |(at, _)| (n.clone(), *at))
        })
        .collect();
    let around_kill =
        |at: &DateTime<Utc>| *at >= killed_at - chrono::Duration::seconds(3) && *at <= taken_over;
    assert!(
        missed.iter().any(|(_, at)| around_kill(at)),
        "no MISSED row for the killed producer's slots: {missed:?}"
    );
}
