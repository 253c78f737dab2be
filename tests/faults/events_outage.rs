//! Fault 9: PostgreSQL restarts under the incident-event publisher. Its session (and the
//! advisory lock that makes it the publisher) ends with the restart; it notices, opens a new
//! one, takes the lock again and publishes the events stored after the restart. Nothing is
//! left unpublished, and every event reaches the topic.

use std::time::Duration;

use sitemon::config::{KafkaConfig, PostgresConfig, Secret};
use sitemon::events::{self, EventOptions};
use sitemon::kafka::KafkaEventSink;
use sitemon::store::PgStore;
use tokio_util::sync::CancellationToken;

use crate::harness::{ONE_AT_A_TIME, Stopped, topic_payloads};
use crate::support::outbox::{insert_pg, samples, unpublished_pg};
use crate::support::{self, wait_for};

async fn unpublished(db: &str) -> Option<usize> {
    let mut c = sqlx::Connection::connect(db).await.ok()?;
    Some(unpublished_pg(&mut c).await.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_publisher_takes_the_outbox_again_after_a_database_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = support::fresh_database().await;
    let store =
        PgStore::connect(&PostgresConfig { url: Secret::new(db.clone()), max_connections: 2 }).unwrap();
    store.migrate().await.unwrap();
    let topic = support::unique("sitemon-fault-events");
    let sink = KafkaEventSink::new(&KafkaConfig {
        bootstrap_servers: support::kafka_bootstrap(),
        topic: support::unique("sitemon-fault-checks"),
        events_topic: topic.clone(),
        sites_topic: None,
        group_id: "fault-events".into(),
        tls: None,
        sasl: None,
        properties: Vec::new(),
    })
    .unwrap();
    let (before, after) = (samples("before", 3), samples("after", 3));
    insert_pg(&mut support::connect(&db).await, &before).await;
    let outbox = store.outbox();
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let task = {
        let (stop, abort) = (stop.clone(), abort.clone());
        tokio::spawn(async move { events::run(&outbox, &sink, &EventOptions::default(), stop, abort).await })
    };
    let first =
        wait_for(Duration::from_secs(60), || async { unpublished(&db).await.filter(|n| *n == 0) }).await;
    assert!(first.is_some(), "the first events were not published");
    {
        let _down = Stopped::postgres();
    } // PostgreSQL starts again here: every session of before the restart is gone.
    let back = wait_for(Duration::from_secs(60), || async {
        let mut c = sqlx::Connection::connect(&db).await.ok()?;
        insert_pg(&mut c, &after).await;
        Some(())
    })
    .await;
    assert!(back.is_some(), "PostgreSQL did not come back");
    let all =
        wait_for(Duration::from_secs(90), || async { unpublished(&db).await.filter(|n| *n == 0) }).await;
    assert!(all.is_some(), "the events stored after the restart were not published");
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(30), task).await.expect("stops").unwrap();
    assert_eq!(report.left, Some(0));
    assert!(report.published >= 6, "{report:?}");
    let mut want: Vec<String> = before.iter().chain(&after).map(|e| e.event_id.to_string()).collect();
    want.sort();
    let mut on_topic: Vec<String> = topic_payloads(&topic, 6)
        .iter()
        .map(|p| sitemon::wire::decode_event(p).expect("an event").event_id.to_string())
        .collect();
    on_topic.sort();
    on_topic.dedup();
    assert_eq!(on_topic, want, "every event on the topic");
}
