//! `sitemon notify` under faults, against real Kafka and PostgreSQL and the local receiver: two
//! instances in one group, a SIGKILL with a request in hand, a provider down for a while.

use std::time::Duration;

use crate::harness::{ONE_AT_A_TIME, Setup, rows};
use crate::notify::{PD_KEY, TOKEN, accepted, hook_config, notify, publish, storm_of};
use crate::receiver::{Answer, Receiver};
use crate::support::unique;

/// Two `sitemon notify` in one group share the topic's partitions and the deliveries: every
/// message reaches each provider exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_in_one_group_send_each_message_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = Setup::new().await;
    let rx = Receiver::start().await;
    let topic = unique("sitemon-notify-two");
    let events = storm_of(60);
    publish(&s.bootstrap, &topic, &events).await;
    let cfg = hook_config(&s, &topic, &unique("notify-two"), &rx, "");
    let (a, b) = tokio::join!(notify(&s, &cfg), notify(&s, &cfg));
    for (path, _) in [("/hook", 0), ("/other", 0)] {
        let (ids, requests) = accepted(&rx, path);
        assert_eq!((ids.len(), requests), (events.len(), events.len()), "{path}: each once\n{a}\n{b}");
    }
    assert_eq!(
        rows(&s.db, "SELECT count(*) FROM notify_deliveries WHERE state = 'SENT'").await,
        2 * events.len() as i64
    );
}

/// SIGKILL while a request is in hand (the receiver holds it): after a restart nothing is lost,
/// and the one message repeated carries the same idempotency key.
#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_delivery_and_restarted_loses_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = Setup::new().await;
    let rx = Receiver::start().await;
    rx.script("/hook", vec![Answer::new(200, "").hang(Duration::from_secs(30))]);
    let topic = unique("sitemon-notify-kill");
    let events = storm_of(10);
    publish(&s.bootstrap, &topic, &events).await;
    let cfg = hook_config(&s, &topic, &unique("notify-kill"), &rx, "");
    let mut env = s.env().to_vec();
    env.extend([("PD_KEY", PD_KEY), ("HOOK_TOKEN", TOKEN)]);
    let first = crate::harness::spawn(&["notify", "-c", &cfg], &env);
    crate::support::wait_for(Duration::from_secs(60), || async { (rx.arrived("/hook") >= 1).then_some(()) })
        .await
        .expect("a request in hand");
    first.signal("-KILL");
    let (code, _) = first.finish(Duration::from_secs(30)).await;
    assert_eq!(code, None, "killed");
    // The restarted notifier waits out the lease of the request cut short, then sends it again.
    let log = notify(&s, &cfg).await;
    for path in ["/hook", "/other"] {
        let (ids, _) = accepted(&rx, path);
        assert_eq!(ids.len(), events.len(), "{path}: every message delivered\n{log}");
    }
    let keys: Vec<String> =
        rx.received("/hook").iter().map(|r| r.headers["idempotency-key"].clone()).collect();
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert!(keys.len() - distinct.len() <= 1, "at most the message in hand is repeated: {keys:?}");
    assert_eq!(rows(&s.db, "SELECT count(*) FROM notify_deliveries WHERE state <> 'SENT'").await, 0);
}

/// A provider down for a minute, every request to it hanging past its 2 s timeout: the other
/// provider's messages are not held up, and the down one gets every message once it is back.
/// (Mostly waiting, so it does not take the one-at-a-time turn.)
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_down_for_a_minute_delays_only_itself() {
    let s = Setup::new().await;
    let rx = Receiver::start().await;
    let down = Duration::from_secs(60);
    rx.down_for("/hook", down, Answer::new(503, "maintenance").hang(Duration::from_secs(3)));
    let began = std::time::Instant::now();
    let topic = unique("sitemon-notify-down");
    let events = storm_of(20);
    publish(&s.bootstrap, &topic, &events).await;
    let cfg = hook_config(&s, &topic, &unique("notify-down"), &rx, "");
    let env = s.env().to_vec();
    let running = crate::harness::spawn(&["notify", "-c", &cfg, "--exit-when-idle", "2s"], &env);
    let other_done = crate::support::wait_for(Duration::from_secs(50), || async {
        (accepted(&rx, "/other").0.len() == events.len()).then(|| accepted(&rx, "/hook").0.len())
    })
    .await
    .expect("the other provider gets everything while the down one hangs");
    assert_eq!(other_done, 0, "…while the down one has accepted nothing yet");
    let (code, log) = running.finish(Duration::from_secs(240)).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(began.elapsed() >= down, "it ended only after the provider came back");
    let (ids, requests) = accepted(&rx, "/hook");
    assert_eq!(ids.len(), events.len(), "every message once it is back");
    assert!(rx.arrived("/hook") > events.len(), "it was asked again while down ({requests} answered)");
    assert!(log.contains("no answer within the timeout"), "{log}");
    assert!(log.contains("delivery not accepted yet"), "{log}");
}
