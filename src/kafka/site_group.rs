//! [`SiteGroup`]: the producers of one region as one consumer group on the sites topic
//! (`kafka.sites_topic`). Each member reads the partitions it is assigned from their beginning,
//! hands its producer the sites of those read to their end (see [`NewList`]), and follows the
//! changes `sitemon sites apply` publishes. A rebalance (cooperative-sticky) moves only the
//! partitions that change owner: the one giving a partition up stops taking its sites' slots,
//! waits for its checks in flight to be published, and commits with the partition how far it got
//! (offset metadata); the next owner starts each site there, so the slots nobody checked in
//! between become MISSED records. A member that dies commits nothing more: the next owner starts
//! from its last commit (once a second), and the slots it published after that reach the store as
//! repeats (same check id) before the MISSED records, which are then dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::client::client_config;
use super::redacted_log::RedactedLog;
use super::setup_error::ClientSetupError;
use super::site_reader::{AHEAD, Readers};
use super::site_share::{Part, Record, Sites, State, Taken, confirm, remove_revoked, send};
use super::sites_topic::FORMAT_HEADER;
use crate::config::KafkaConfig;
use crate::producer::{NewList, Progress};

/// The offset metadata a member commits with a partition: every slot of its sites before this
/// moment (µs since the epoch) was published.
const CHECKED_THROUGH: &str = "sitemon-checked-through=";
/// How often a member commits how far its checks got.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// How long the producer may take to take a new list (it does between two slots).
const TAKE_LIST: Duration = Duration::from_secs(10);
/// How long a member giving partitions up waits for their checks in flight to be published.
const FINISH_CHECKS: Duration = Duration::from_secs(60);
/// How long a partition that cannot be read to its end holds back the others' sites.
const LOAD_WAIT: Duration = Duration::from_secs(30);
/// A list of this many sites taken, the memory freed on the way is handed back to the system.
const TRIM_FROM: usize = 10_000;
/// While records keep coming, how often the member still sends the producer a list and commits.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// How long broker requests made while a rebalance waits (committed offsets, watermarks) may take.
const REQUEST: Duration = Duration::from_secs(10);

/// A member of its region's group on the sites topic, running on a thread of its own; its
/// producer gets each new share as a [`NewList`].
pub struct SiteGroup {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct GroupContext {
    log: RedactedLog,
    topic: String,
    state: Mutex<State>,
    to: mpsc::Sender<NewList>,
    progress: Arc<Progress>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assigned(consumer, &parts);
                // Every owner reads its partitions whole: the state is the whole partition.
                let mut from_start = TopicPartitionList::new();
                for &p in &parts {
                    let _ = from_start.add_partition_offset(&self.topic, p, Offset::Beginning);
                }
                let done = match cooperative {
                    true => consumer.incremental_assign(&from_start),
                    false => consumer.assign(&from_start),
                };
                if let Err(e) = done {
                    tracing::error!(error = %e, "sites topic: taking the assigned partitions failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoked(consumer, &parts, consumer.assignment_lost());
                let done = match cooperative {
                    true => consumer.incremental_unassign(tpl),
                    false => consumer.unassign(),
                };
                if let Err(e) = done {
                    tracing::error!(error = %e, "sites topic: giving the partitions up failed");
                }
            }
            other => {
                tracing::warn!(error = ?other, "sites topic: rebalance failed; librdkafka retries");
                if !cooperative {
                    let _ = consumer.unassign();
                }
            }
        }
    }
}

impl GroupContext {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// New partitions: where their previous owner's checks ended, and where they end now.
    fn assigned(&self, consumer: &BaseConsumer<Self>, parts: &[i32]) {
        let mut tpl = TopicPartitionList::new();
        for &p in parts {
            tpl.add_partition(&self.topic, p);
        }
        // Asked again on a failure: without it, the slots nobody checked before the handover
        // would have no row.
        // One deadline for every request of this callback: the group waits for it.
        let deadline = Instant::now() + 2 * REQUEST;
        let left = || {
            Timeout::After(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100)))
        };
        let mut committed = consumer.committed_offsets(tpl.clone(), left());
        for _ in 0..2 {
            if committed.is_ok() || Instant::now() >= deadline {
                break;
            }
            committed = consumer.committed_offsets(tpl.clone(), left());
        }
        let resume: HashMap<i32, i64> = match committed {
            Ok(committed) => committed
                .elements()
                .iter()
                .filter_map(|e| {
                    Some((e.partition(), e.metadata().strip_prefix(CHECKED_THROUGH)?.parse().ok()?))
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, ?parts, "sites topic: where the previous owners' checks ended is unknown; the slots they missed before the handover have no row");
                HashMap::new()
            }
        };
        let mut st = self.state();
        st.epoch += 1;
        let epoch = st.epoch;
        for &p in parts {
            // Unknown, the partition's end-of-partition event says when it is read.
            let (low, end) = match Instant::now() < deadline {
                true => consumer.fetch_watermarks(&self.topic, p, left()).unwrap_or((0, i64::MAX)),
                false => (0, i64::MAX),
            };
            st.parts.insert(
                p,
                Part {
                    sites: Sites::default(),
                    loaded: end <= low,
                    resume: resume.get(&p).copied(),
                    applied: false,
                    end,
                    assigned_at: Instant::now(),
                    epoch,
                },
            );
        }
        st.dirty = true;
        tracing::info!(?parts, resumed = resume.len(), "sites topic: partitions assigned");
    }

    /// Partitions given up: their sites leave the producer's list; once their checks in flight are
    /// published, how far they got is committed for the next owner. A partition `lost` (this
    /// member was thrown out of the group) is no longer this member's to commit.
    fn revoked(&self, consumer: &BaseConsumer<Self>, parts: &[i32], lost: bool) {
        let mut st = self.state();
        // A list taken just now makes its partitions the producer's before they are counted.
        confirm(&mut st, Duration::ZERO);
        let mut had = remove_revoked(&mut st, parts);
        tracing::info!(?parts, lost, "sites topic: partitions revoked");
        if had.is_empty() {
            return;
        }
        // The producer drops the revoked sites with the next list it takes. One list at a time:
        // while it has not taken the last one (its in-flight window full), another would only
        // wait behind it, and this callback with it.
        let taken = match confirm(&mut st, TAKE_LIST) {
            Taken::Waiting => {
                st.dirty = true;
                Taken::Waiting
            }
            _ => match send(&mut st, &self.to) {
                false => Taken::Gone,
                true => confirm(&mut st, TAKE_LIST),
            },
        };
        let through = match taken {
            Taken::At(at) => wait_checked_through(&self.progress, at),
            // The producer has stopped: how far it got is final, for the sites it had (a list it
            // was sent but never took does not count).
            Taken::Gone => {
                had.retain(|&(_, applied)| applied);
                self.progress.checked_through()
            }
            Taken::Waiting | Taken::Nothing => {
                tracing::warn!(
                    "sites topic: the producer did not take the list without the revoked partitions in time; \
                     the next owner starts from the last commit"
                );
                None
            }
        };
        drop(st);
        if let (false, Some(through)) = (lost, through) {
            let had: Vec<i32> = had.iter().map(|&(p, _)| p).collect();
            commit(consumer, &self.topic, &had, through, CommitMode::Sync);
        }
    }
}

/// Waits until every slot before `at` was published; `None` if that takes longer than
/// [`FINISH_CHECKS`].
fn wait_checked_through(progress: &Progress, at: i64) -> Option<i64> {
    let deadline = Instant::now() + FINISH_CHECKS;
    loop {
        if progress.checked_through().is_some_and(|t| t >= at) {
            return Some(at);
        }
        if Instant::now() > deadline {
            tracing::warn!(
                "sites topic: checks of revoked sites still in flight; the next owner starts from the last commit"
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Commits `through` as how far the checks of `parts` got.
fn commit(consumer: &BaseConsumer<GroupContext>, topic: &str, parts: &[i32], through: i64, mode: CommitMode) {
    if parts.is_empty() {
        return;
    }
    let positions = consumer.position().unwrap_or_default();
    let mut tpl = TopicPartitionList::new();
    for &p in parts {
        let at = match positions.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(n)) => n,
            _ => 0,
        };
        let mut e = tpl.add_partition(topic, p);
        let _ = e.set_offset(Offset::Offset(at));
        e.set_metadata(format!("{CHECKED_THROUGH}{through}"));
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        tracing::warn!(error = %e, "sites topic: committing how far the checks got failed");
    }
}

/// A member's client id, which `status` shows: its host and process.
fn client_id() -> String {
    format!("sitemon-producer-{}-{}", gethostname::gethostname().to_string_lossy(), std::process::id())
}

impl SiteGroup {
    /// Joins group `group` on `topic`; each new share goes to `to` (the producer's reloads), and
    /// `progress` (the producer's) is committed with the partitions. Problems of a site record are
    /// logged with its name and field, and the site's last good definition (if any) kept.
    pub fn join(
        kafka: &KafkaConfig,
        topic: &str,
        group: &str,
        progress: Arc<Progress>,
        to: mpsc::Sender<NewList>,
    ) -> Result<SiteGroup, ClientSetupError> {
        let context = GroupContext {
            log: RedactedLog::new(kafka),
            topic: topic.to_owned(),
            state: Mutex::new(State::default()),
            to,
            progress,
        };
        let client = client_id();
        let own = [
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "true"),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("group.protocol", "classic"),
            ("client.id", client.as_str()),
        ];
        // Defaults `kafka.properties` may override. A full fetch queue pauses fetching 1 s by
        // default: most of a large share's load. A broker answers a connection's requests in
        // order, so the member's idle fetch (held up to `fetch.wait.max.ms`, 500 ms by default)
        // delays the requests a new assignment makes and the first fetch of its partitions: a
        // takeover would wait for it twice. A heartbeat a second (3 s by default) has a member
        // learn within a second that the group lost one.
        let defaults = [
            ("fetch.queue.backoff.ms", "10"),
            ("fetch.wait.max.ms", "100"),
            ("heartbeat.interval.ms", "1000"),
        ];
        let mut config = client_config(kafka, &defaults);
        // `kafka.properties` apply to every client; the group's own settings are what sharing
        // rests on (one `group.instance.id` for all producers would have them fence each other).
        for (key, value) in own {
            config.set(key, value);
        }
        config.remove("group.instance.id");
        let consumer: BaseConsumer<GroupContext> =
            config.create_with_context(context).map_err(|e| ClientSetupError::new(e, kafka))?;
        consumer.subscribe(&[topic]).map_err(|e| ClientSetupError::new(e, kafka))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("sites-group".into())
            .spawn({
                let stop = stop.clone();
                move || follow(consumer, &stop)
            })
            .expect("spawning the sites-group thread");
        Ok(SiteGroup { stop, thread: Some(thread) })
    }

    /// Leaves the group once the producer has stopped: how far its checks got is committed with
    /// each partition, so that the next owners start there.
    pub async fn leave(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// One record of an assigned partition, read when this member's assignments numbered `epoch`.
fn record<'m>(m: &'m BorrowedMessage<'_>, epoch: u64) -> Record<'m> {
    let format = m
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == FORMAT_HEADER).map(|h| h.value.unwrap_or_default()));
    Record { epoch, partition: m.partition(), offset: m.offset(), key: m.key(), format, value: m.payload() }
}

impl Drop for SiteGroup {
    /// A member dropped without [`SiteGroup::leave`] (the producer ended early) still leaves the
    /// group, on its own thread, rather than hold its partitions until the session times out.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The member's loop: records in, lists out, a commit a second; at the stop, the partitions given
/// up (committing how far the producer got) and the group left.
fn follow(consumer: BaseConsumer<GroupContext>, stop: &AtomicBool) {
    let ctx = consumer.context();
    let mut last_commit = Instant::now();
    let mut last_error: Option<Instant> = None;
    let mut last_look = Instant::now();
    // Records are read (parsed, validated) on two threads of their own while this one polls;
    // each site's new definition or tombstone is taken in the order read, a partition's end
    // after its records. A definition with problems is logged (name and field, never a value)
    // and the site's last good one kept.
    let mut readers = Readers::start(|name| std::env::var(name).ok());
    while !stop.load(Ordering::Acquire) {
        readers.take(&mut ctx.state(), AHEAD - 1);
        let wait = match (readers.holds(), readers.is_idle()) {
            (true, _) => Duration::ZERO,
            (false, false) => Duration::from_millis(1),
            (false, true) => Duration::from_millis(100),
        };
        let polled = consumer.poll(wait);
        let epoch = ctx.state().epoch;
        match polled {
            Some(Ok(m)) => {
                readers.push(&record(&m, epoch));
                if last_look.elapsed() < LOOK_EVERY {
                    continue;
                }
            }
            None => readers.flush(),
            Some(Err(KafkaError::PartitionEOF(p))) => readers.end(p, epoch),
            Some(Err(e)) if last_error.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) => {
                tracing::warn!(error = %e, "sites topic: reading failed; librdkafka retries");
                last_error = Some(Instant::now());
            }
            Some(Err(_)) => {}
        }
        last_look = Instant::now();
        readers.take(&mut ctx.state(), usize::MAX);
        let mut st = ctx.state();
        if let Taken::At(_) = confirm(&mut st, Duration::ZERO)
            && st.parts.values().map(|p| p.sites.len()).sum::<usize>() >= TRIM_FROM
        {
            // The reading threads' buffers and the list's trees are freed by now: their pages
            // go back to the system rather than stay in each thread's heap as RSS.
            crate::config::release_parse_memory();
        }
        let ready = st.parts.values().all(|p| p.loaded || p.assigned_at.elapsed() > LOAD_WAIT);
        if st.dirty && st.pending.is_none() && ready && !send(&mut st, &ctx.to) {
            // The producer is gone: nothing more to hand it.
            st.dirty = false;
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            last_commit = Instant::now();
            let applied: Vec<i32> = st.parts.iter().filter(|(_, p)| p.applied).map(|(&p, _)| p).collect();
            drop(st);
            if let Some(through) = ctx.progress.checked_through() {
                commit(&consumer, &ctx.topic, &applied, through, CommitMode::Async);
            }
        }
    }
    // The producer has stopped: leaving revokes every partition, committing how far it got.
    consumer.unsubscribe();
    let deadline = Instant::now() + REQUEST;
    while Instant::now() < deadline && consumer.assignment().is_ok_and(|a| a.count() > 0) {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    tracing::info!("sites topic: left the group");
}
