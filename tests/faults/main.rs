//! Fault tests against the real broker and database: broker restarts, consumer crashes,
//! database outages, graceful stops and poison records. They stop and start the shared test
//! services, so they run one at a time (and cargo runs this binary apart from the others).

#[path = "../integration/support/mod.rs"]
#[allow(dead_code)]
mod support;

mod harness;
mod receiver;

mod consumer_crash;
mod consumer_stop;
mod crafted;
mod database_outage;
mod events_outage;
mod graceful_stop;
mod incident_replay;
mod incident_scenarios;
mod kafka_restart;
mod notify;
mod notify_email;
mod notify_faults;
mod notify_run;
mod once_round;
mod poison;
mod producer_group;
mod producer_outage_stop;
mod producer_readiness;
mod rebalance;
