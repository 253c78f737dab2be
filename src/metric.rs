//! Every metric sitemon records, each name written once here with its help text; the call
//! sites name the constant, and [`describe`] gives `/metrics` its `# HELP` lines.

macro_rules! metrics_of {
    ($($kind:ident $name:ident = $text:literal, $help:literal;)*) => {
        $(#[doc = $help] pub const $name: &str = $text;)*

        /// Every name above.
        pub const ALL: &[&str] = &[$($name),*];

        /// Describes every metric to the installed recorder.
        pub fn describe() {
            $(metrics_of!(@describe $kind $name $help);)*
        }
    };
    (@describe counter $name:ident $help:literal) => { metrics::describe_counter!($name, $help) };
    (@describe gauge $name:ident $help:literal) => { metrics::describe_gauge!($name, $help) };
    (@describe histogram $name:ident $help:literal) => { metrics::describe_histogram!($name, $help) };
}

metrics_of! {
    counter RESULTS_PUBLISHED = "sitemon_results_published_total", "Results the broker acknowledged, by status (MISSED records included).";
    counter PUBLISH_RETRIES = "sitemon_publish_retries_total", "Publish attempts that failed and were retried.";
    counter RESULTS_FAILED = "sitemon_results_failed_total", "Results made but not acknowledged before the grace period ended.";
    counter ABANDONED_SLOTS = "sitemon_abandoned_slots_total", "Slots that ended without a result when the grace period ended.";
    gauge RESULTS_IN_FLIGHT = "sitemon_results_in_flight", "Results checked but not yet acknowledged.";
    counter MISSED_SLOTS = "sitemon_missed_slots_total", "Slots that could not start in time (a MISSED record, or carried on the site's next record as a run).";
    histogram SCHEDULE_LAG = "sitemon_schedule_lag_seconds", "How late a check started after its slot, by region.";
    histogram CHECK_SECONDS = "sitemon_check_seconds", "How long a check took, start to end, by region and failure kind (NONE: up).";
    gauge SITES_ASSIGNED = "sitemon_sites_assigned", "Sites this producer checks (its share of the list).";
    gauge PRODUCER_SATURATION = "sitemon_producer_saturation", "Share of the producer's concurrent checks (max_concurrency) in use, 0 to 1.";
    counter CONFIG_RELOADS = "sitemon_config_reloads_total", "Site lists reloaded and taken.";
    counter CONFIG_RELOAD_FAILURES = "sitemon_config_reload_failures_total", "Site lists that failed to reload (the running one kept).";
    counter STORED_RESULTS = "sitemon_stored_results_total", "Results stored by the consumer.";
    counter DEAD_LETTERS = "sitemon_dead_letters_total", "Records stored in dead_letters instead of the history.";
    counter STORE_RETRIES = "sitemon_store_retries_total", "Batches whose storing failed and was retried.";
    histogram BATCH_STORE_SECONDS = "sitemon_batch_store_seconds", "How long storing one batch took.";
    counter REVOKED_BATCHES = "sitemon_revoked_batches_total", "Batches not acknowledged because their partition was revoked meanwhile.";
    counter RESULTS_AHEAD = "sitemon_results_ahead_total", "Results dated further ahead than consumer.max_clock_skew (history only).";
    counter REGISTRY_RETRIES = "sitemon_registry_retries_total", "Writer-schema fetches from the registry that failed and were retried.";
    counter STATUS_RECOMPUTED = "sitemon_status_recomputed_total", "Latest statuses recomputed from the history (results out of order).";
    counter INCIDENT_EVENTS = "sitemon_incident_events_total", "Incident events written to the outbox.";
    counter INCIDENT_RESULTS_LATE = "sitemon_incident_results_late_total", "Results that came after their slot was judged (history only).";
    counter INCIDENT_REGIONS_RETIRED = "sitemon_incident_regions_retired_total", "Regions retired from a site's incident tracks after falling silent.";
    counter INCIDENT_REGIONS_IGNORED = "sitemon_incident_regions_ignored_total", "Results of regions past a site's cap of tracked regions.";
    counter EVENTS_PUBLISHED = "sitemon_events_published_total", "Incident events published to the events topic.";
    counter EVENTS_RETRIES = "sitemon_events_retries_total", "Rounds of publishing incident events that failed and were retried.";
    gauge EVENTS_PENDING = "sitemon_events_pending", "Incident events in the outbox not yet published.";
    counter NOTIFY_SENT = "sitemon_notify_sent_total", "Notifications a provider accepted, by provider.";
    counter NOTIFY_RETRIES = "sitemon_notify_retries_total", "Notification attempts retried, by provider.";
    counter NOTIFY_FAILED = "sitemon_notify_failed_total", "Notifications a provider refused for good, by provider.";
    counter NOTIFY_UNREADABLE_EVENTS = "sitemon_notify_unreadable_events_total", "Events notify could not read (skipped).";
}

/// Upper bounds (seconds) of the histograms' buckets: the same on every process, so that a
/// fleet's producers add up in one query (`sum by (le)`).
pub const BUCKETS: &[(&str, &[f64])] = &[
    (
        SCHEDULE_LAG,
        &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
    ),
    (CHECK_SECONDS, &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
    (BATCH_STORE_SECONDS, &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
];

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_distinct_prometheus_names() {
        let mut seen = std::collections::HashSet::new();
        for name in super::ALL {
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.starts_with("sitemon_") && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }
}
