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

use std::collections::{BTreeMap, HashMap};
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
use tokio::sync::{mpsc, oneshot};

use super::client::client_config;
use super::redacted_log::RedactedLog;
use super::setup_error::ClientSetupError;
use super::sites_topic::{FORMAT, FORMAT_HEADER};
use crate::config::{Env, KafkaConfig, SiteRecords};
use crate::domain::Site;
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
/// How long broker requests made while a rebalance waits (committed offsets, watermarks) may take.
const REQUEST: Duration = Duration::from_secs(10);

/// A member of its region's group on the sites topic, running on a thread of its own; its
/// producer gets each new share as a [`NewList`].
pub struct SiteGroup {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One assigned partition.
struct Part {
    /// Its sites that read well, by name.
    sites: HashMap<String, Site>,
    /// Read to the end it had when assigned: its sites go to the producer from then on.
    loaded: bool,
    /// Where the previous owner's checks ended (its commit), used when the sites are first taken.
    resume: Option<i64>,
    /// Its sites are in the list the producer runs.
    applied: bool,
    /// Its end when assigned (the offset after the last record).
    end: i64,
    /// When it was assigned: after [`LOAD_WAIT`] unread, the others' sites go without it.
    assigned_at: Instant,
}

/// A list sent to the producer whose effect it has not confirmed yet.
struct Pending {
    applied: oneshot::Receiver<i64>,
    parts: Vec<i32>,
}

#[derive(Default)]
struct State {
    parts: BTreeMap<i32, Part>,
    pending: Option<Pending>,
    /// A change the producer has not been sent yet.
    dirty: bool,
    records: SiteRecords,
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
        for &p in parts {
            // Unknown, the partition's end-of-partition event says when it is read.
            let (low, end) = match Instant::now() < deadline {
                true => consumer.fetch_watermarks(&self.topic, p, left()).unwrap_or((0, i64::MAX)),
                false => (0, i64::MAX),
            };
            st.parts.insert(
                p,
                Part {
                    sites: HashMap::new(),
                    loaded: end <= low,
                    resume: resume.get(&p).copied(),
                    applied: false,
                    end,
                    assigned_at: Instant::now(),
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

/// Forgets the revoked `parts`; returns those whose sites the producer has or was sent (the
/// others it never checked: committing for them would hide the previous owner's checkpoint).
fn remove_revoked(st: &mut State, parts: &[i32]) -> Vec<(i32, bool)> {
    let mut had = Vec::new();
    for p in parts {
        let sent = st.pending.as_ref().is_some_and(|pending| pending.parts.contains(p));
        if let Some(part) = st.parts.remove(p)
            && (part.applied || sent)
        {
            had.push((*p, part.applied));
        }
    }
    had
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

/// Sends the producer the sites of every partition read to its end; false when the producer is
/// gone.
fn send(st: &mut State, to: &mpsc::Sender<NewList>) -> bool {
    let mut list = NewList::default();
    let mut parts = Vec::new();
    for (&p, part) in st.parts.iter().filter(|(_, part)| part.loaded) {
        parts.push(p);
        list.sites.extend(part.sites.values().cloned());
        if let (false, Some(from)) = (part.applied, part.resume) {
            list.resume.extend(part.sites.keys().map(|name| (name.clone(), from)));
        }
    }
    let (tx, rx) = oneshot::channel();
    list.applied = Some(tx);
    let sites = list.sites.len();
    if to.blocking_send(list).is_err() {
        return false;
    }
    tracing::info!(
        sites,
        partitions = parts.len(),
        "sites topic: this producer's share sent to the scheduler"
    );
    st.pending = Some(Pending { applied: rx, parts });
    st.dirty = false;
    true
}

/// What became of the list sent last.
enum Taken {
    /// It took effect at this moment (µs); its partitions are the producer's.
    At(i64),
    /// The producer is gone (stopped): it took no list after that.
    Gone,
    /// Not yet.
    Waiting,
    /// No list is waiting to be taken.
    Nothing,
}

/// What became of the pending list, waiting at most `wait` for the producer to take it.
fn confirm(st: &mut State, wait: Duration) -> Taken {
    let deadline = Instant::now() + wait;
    let Some(pending) = st.pending.as_mut() else { return Taken::Nothing };
    let taken = loop {
        match pending.applied.try_recv() {
            Ok(at) => break Taken::At(at),
            Err(oneshot::error::TryRecvError::Closed) => break Taken::Gone,
            Err(oneshot::error::TryRecvError::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(oneshot::error::TryRecvError::Empty) => return Taken::Waiting,
        }
    };
    let pending = st.pending.take().expect("pending");
    if let Taken::At(_) = taken {
        for p in pending.parts {
            if let Some(part) = st.parts.get_mut(&p) {
                part.applied = true;
            }
        }
    }
    taken
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
        // A full fetch queue pauses fetching 1 s by default: most of a large share's load.
        let mut config = client_config(kafka, &[("fetch.queue.backoff.ms", "10")]);
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

/// One record of an assigned partition: its site's new definition, or a tombstone removing it.
/// A definition with problems is logged (name and field, never a value) and the site's last good
/// one kept.
fn take(st: &mut State, m: &BorrowedMessage<'_>, env: Env) {
    let format = m
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == FORMAT_HEADER).map(|h| h.value.unwrap_or_default()));
    let record =
        Record { partition: m.partition(), offset: m.offset(), key: m.key(), format, value: m.payload() };
    take_record(st, record, env);
}

/// One record of the sites topic, as any client may have written it.
struct Record<'a> {
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    /// Its `sitemon-format` header.
    format: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// See [`take`].
fn take_record(st: &mut State, r: Record<'_>, env: Env) {
    let State { parts, records, dirty, .. } = st;
    let Some(part) = parts.get_mut(&r.partition) else { return };
    if r.offset + 1 >= part.end && !part.loaded {
        part.loaded = true;
        *dirty = true;
    }
    let Some(name) = r.key.and_then(|k| std::str::from_utf8(k).ok()) else {
        tracing::error!(
            partition = r.partition,
            offset = r.offset,
            "sites topic: a record without a site name as its key; skipped"
        );
        return;
    };
    if r.format.is_some_and(|f| f != FORMAT.as_bytes()) {
        tracing::error!(
            site = name,
            "sites topic: a record in a format this producer does not read; upgrade it (the site's last definition is kept)"
        );
        return;
    }
    match r.value {
        None => {
            part.sites.remove(name);
        }
        Some(value) => match records.read(name, value, env) {
            Ok(site) => {
                part.sites.insert(name.to_owned(), site);
            }
            Err(problems) => {
                for p in problems {
                    tracing::error!(site = name, field = %p.path, problem = %p.message, "sites topic: a site definition with a problem; its last good definition is kept");
                }
                return;
            }
        },
    }
    *dirty |= part.loaded;
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
    let env = |name: &str| std::env::var(name).ok();
    let ctx = consumer.context();
    let mut last_commit = Instant::now();
    let mut last_error: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => take(&mut ctx.state(), &m, &env),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                let mut st = ctx.state();
                if let Some(part) = st.parts.get_mut(&p).filter(|part| !part.loaded) {
                    part.loaded = true;
                    st.dirty = true;
                }
            }
            Some(Err(e)) if last_error.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) => {
                tracing::warn!(error = %e, "sites topic: reading failed; librdkafka retries");
                last_error = Some(Instant::now());
            }
            Some(Err(_)) => {}
        }
        let mut st = ctx.state();
        confirm(&mut st, Duration::ZERO);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn part(loaded: bool, applied: bool) -> Part {
        Part { sites: HashMap::new(), loaded, resume: None, applied, end: 0, assigned_at: Instant::now() }
    }

    #[test]
    fn only_partitions_whose_sites_the_producer_has_or_was_sent_are_handed_back() {
        let mut st = State::default();
        st.parts.insert(1, part(true, true));
        st.parts.insert(2, part(true, false));
        st.parts.insert(3, part(false, false));
        st.parts.insert(4, part(true, true));
        let (_tx, applied) = oneshot::channel();
        st.pending = Some(Pending { applied, parts: vec![2] });
        assert_eq!(
            remove_revoked(&mut st, &[1, 2, 3]),
            [(1, true), (2, false)],
            "3 was never read, so never checked here"
        );
        assert_eq!(st.parts.keys().copied().collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn records_add_change_and_remove_sites_and_nothing_a_record_carries_breaks_the_last_good_one() {
        let env = |_: &str| None;
        let mut st = State::default();
        st.parts.insert(0, Part { end: 100, ..part(false, false) });
        let put =
            |st: &mut State, offset: i64, key: Option<&[u8]>, format: Option<&[u8]>, value: Option<&[u8]>| {
                take_record(st, Record { partition: 0, offset, key, format, value }, &env)
            };
        let url = |st: &State| st.parts[&0].sites.get("a").map(|s| s.url.as_str().to_owned());
        put(
            &mut st,
            0,
            Some(b"a"),
            Some(FORMAT.as_bytes()),
            Some(br#"{"name":"a","url":"http://one.test/"}"#),
        );
        assert_eq!(url(&st).as_deref(), Some("http://one.test/"));
        assert!(!st.dirty, "nothing goes to the producer before the partition is read to its end");
        for (key, format, value) in [
            (Some(&b"a"[..]), None, Some(&b"\xff not json"[..])),
            (Some(b"a"), None, Some(br#"{"name":"a","url":"gopher://x/"}"#)),
            (
                Some(b"a"),
                Some(&b"site-definition-v9"[..]),
                Some(br#"{"name":"a","url":"http://nine.test/"}"#),
            ),
            (Some(b"a"), Some(b"site-definition-v9"), None),
            (None, None, Some(br#"{"name":"a","url":"http://keyless.test/"}"#)),
            (Some(b"\xff\xfe"), None, None),
            (Some(b"b"), None, Some(br#"{"name":"a","url":"http://two.test/"}"#)),
        ] {
            put(&mut st, 1, key, format, value);
            assert_eq!(url(&st).as_deref(), Some("http://one.test/"), "{key:?} {format:?} {value:?}");
        }
        put(&mut st, 98, Some(b"a"), None, Some(br#"{"name":"a","url":"http://two.test/"}"#));
        assert_eq!(url(&st).as_deref(), Some("http://two.test/"));
        put(&mut st, 99, Some(b"a"), None, None);
        assert_eq!(url(&st), None, "a tombstone removes the site");
        assert!(st.parts[&0].loaded && st.dirty, "the partition's last record read");
    }

    #[test]
    fn a_list_taken_makes_its_partitions_the_producers_and_a_producer_gone_says_so() {
        let mut st = State::default();
        st.parts.insert(1, part(true, false));
        assert!(matches!(confirm(&mut st, Duration::ZERO), Taken::Nothing));
        let (tx, applied) = oneshot::channel();
        st.pending = Some(Pending { applied, parts: vec![1, 7] });
        assert!(matches!(confirm(&mut st, Duration::ZERO), Taken::Waiting));
        tx.send(42).unwrap();
        assert!(matches!(confirm(&mut st, Duration::ZERO), Taken::At(42)));
        assert!(st.parts[&1].applied && st.pending.is_none());
        let (tx, applied) = oneshot::channel::<i64>();
        st.pending = Some(Pending { applied, parts: vec![1] });
        drop(tx);
        assert!(matches!(confirm(&mut st, Duration::ZERO), Taken::Gone));
    }
}
