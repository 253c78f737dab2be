//! [`Readers`]: the sites topic's records read (parsed and validated) on two threads of their own
//! while the member's thread goes on polling; what they say is taken into the member's state in
//! the order the records were read, each partition's end after its records.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;

use super::site_share::{Record, Said, State, apply, reached_end, read_record};
use crate::config::SiteRecords;

/// Records read one after another without a wait are read together, up to this many.
const HOLD: usize = 4096;
/// Batches being read at once at most: the member's thread waits for the oldest beyond that.
pub(super) const AHEAD: usize = 4;

/// Where a site's `${SITE_*}` references are resolved from (the process environment).
pub(super) type EnvFn = fn(&str) -> Option<String>;

/// Where a record's parts are in its batch's bytes.
struct At {
    epoch: u64,
    partition: i32,
    offset: i64,
    key: Option<Range<usize>>,
    format: Option<Range<usize>>,
    value: Option<Range<usize>>,
}

/// Records copied out of the client's buffers, one allocation for all their bytes, to be read
/// on other threads.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    records: Vec<At>,
}

impl Batch {
    fn push(&mut self, r: &Record<'_>) {
        let mut copy = |part: Option<&[u8]>| {
            let part = part?;
            let start = self.bytes.len();
            self.bytes.extend_from_slice(part);
            Some(start..self.bytes.len())
        };
        let (key, format, value) = (copy(r.key), copy(r.format), copy(r.value));
        self.records.push(At {
            epoch: r.epoch,
            partition: r.partition,
            offset: r.offset,
            key,
            format,
            value,
        });
    }

    fn record(&self, i: usize) -> Record<'_> {
        let at = &self.records[i];
        let part = |range: &Option<Range<usize>>| range.clone().map(|range| &self.bytes[range]);
        Record {
            epoch: at.epoch,
            partition: at.partition,
            offset: at.offset,
            key: part(&at.key),
            format: part(&at.format),
            value: part(&at.value),
        }
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A part of a batch for a reading thread, and where its answer goes.
type Job = (Arc<Batch>, Range<usize>, Sender<Vec<Said>>);

/// What was read, in order.
enum Read {
    /// A batch of records, its halves read by the two threads.
    Batch { records: Arc<Batch>, halves: [Half; 2] },
    /// A partition's end, reached when this member's assignments numbered `epoch`.
    End { partition: i32, epoch: u64 },
}

/// One half of a batch: where it is, and what its thread said once it has.
struct Half {
    range: Range<usize>,
    said: Receiver<Vec<Said>>,
    done: Option<Vec<Said>>,
}

/// The two reading threads, what they are reading, and the records not handed to them yet.
pub(super) struct Readers {
    jobs: Vec<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    queue: VecDeque<Read>,
    batch: Batch,
    env: EnvFn,
}

impl Readers {
    pub(super) fn start(env: EnvFn) -> Self {
        let (jobs, threads) = (0..2)
            .map(|i| {
                let (tx, rx) = channel::<Job>();
                let thread = std::thread::Builder::new()
                    .name(format!("sites-read-{i}"))
                    .spawn(move || read(rx, env))
                    .expect("spawning a sites-topic reading thread");
                (tx, thread)
            })
            .unzip();
        Readers { jobs, threads, queue: VecDeque::new(), batch: Batch::default(), env }
    }

    /// One record read from the topic; a full batch goes to the threads.
    pub(super) fn push(&mut self, r: &Record<'_>) {
        self.batch.push(r);
        if self.batch.len() >= HOLD {
            self.flush();
        }
    }

    /// The records held go to the threads, half to each.
    pub(super) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let records = Arc::new(std::mem::take(&mut self.batch));
        let mid = records.len() / 2;
        let ranges = [0..mid, mid..records.len()];
        let halves = std::array::from_fn(|i| {
            let (tx, said) = channel();
            // A thread that is gone drops `tx`: its half is then read here (see `answer`).
            let _ = self.jobs[i].send((records.clone(), ranges[i].clone(), tx));
            Half { range: ranges[i].clone(), said, done: None }
        });
        self.queue.push_back(Read::Batch { records, halves });
    }

    /// A partition's end, reached when this member's assignments numbered `epoch`: taken after
    /// the records read before it.
    pub(super) fn end(&mut self, partition: i32, epoch: u64) {
        self.flush();
        self.queue.push_back(Read::End { partition, epoch });
    }

    /// Nothing held or being read.
    pub(super) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.batch.is_empty()
    }

    /// Something held not handed to the threads yet.
    pub(super) fn holds(&self) -> bool {
        !self.batch.is_empty()
    }

    /// Takes into `st`, in the order read, what the threads have read; while more than `keep`
    /// batches and ends are waiting, waits for the oldest.
    pub(super) fn take(&mut self, st: &mut State, keep: usize) {
        loop {
            let wait = self.queue.len() > keep;
            let env = self.env;
            match self.queue.front_mut() {
                None => return,
                Some(Read::End { partition, epoch }) => reached_end(st, *partition, *epoch),
                Some(Read::Batch { records, halves }) => {
                    let [first, second] = halves;
                    if !(answer(first, records, wait, env) & answer(second, records, wait, env)) {
                        return;
                    }
                    let said = first
                        .done
                        .take()
                        .into_iter()
                        .flatten()
                        .chain(second.done.take().into_iter().flatten());
                    for (i, said) in said.enumerate() {
                        apply(st, &records.record(i), said);
                    }
                }
            }
            self.queue.pop_front();
        }
    }
}

/// Whether half `h` of `records` has been read, waiting for it with `wait`; a half whose thread
/// is gone is read on this one.
fn answer(h: &mut Half, records: &Batch, wait: bool, env: EnvFn) -> bool {
    if h.done.is_some() {
        return true;
    }
    let said = match wait {
        true => h.said.recv().map_err(|_| TryRecvError::Disconnected),
        false => h.said.try_recv(),
    };
    h.done = match said {
        Ok(said) => Some(said),
        Err(TryRecvError::Empty) => return false,
        Err(TryRecvError::Disconnected) => {
            tracing::error!(
                "sites topic: a reading thread is gone; its records are read on the member's thread"
            );
            let mut pool = SiteRecords::default();
            Some(h.range.clone().map(|i| read_record(&mut pool, &records.record(i), &env)).collect())
        }
    };
    true
}

impl Drop for Readers {
    /// The threads end with their last batch.
    fn drop(&mut self) {
        self.jobs.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A reading thread: each part of a batch it is given, read in order with its own options pool.
fn read(jobs: Receiver<Job>, env: EnvFn) {
    let mut records = SiteRecords::default();
    for (batch, range, said) in jobs {
        let out = range.map(|i| read_record(&mut records, &batch.record(i), &env)).collect();
        let _ = said.send(out);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use proptest::prelude::*;

    use super::*;
    use crate::kafka::site_share::{Part, Sites};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// A state with partition 0 assigned in epoch 1, `end` records long.
    fn assigned(end: i64) -> State {
        let mut st = State { epoch: 1, ..State::default() };
        let part = Part {
            sites: Sites::default(),
            loaded: false,
            resume: None,
            applied: false,
            end,
            assigned_at: Instant::now(),
            epoch: 1,
        };
        st.parts.insert(0, part);
        st
    }

    /// The sites of partition 0 as (name, url).
    fn urls(st: &State) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> =
            st.parts[&0].sites.iter().map(|(n, s)| (n.clone(), s.url.as_str().to_owned())).collect();
        v.sort();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// However the records of a partition are cut into batches and however far the threads
        /// are allowed to read ahead, the sites it ends with are those of the records taken one
        /// by one in order; records read before the partition's assignment are not taken, and
        /// its end is taken after its records.
        #[test]
        fn the_sites_do_not_depend_on_how_records_are_batched_or_read_ahead(
            ops in proptest::collection::vec((0u8..12, 0u8..4), 1..2500),
            cuts in proptest::collection::vec(1usize..1200, 0..8),
            stale in 0usize..40,
            keep in 0usize..AHEAD,
            end_known in any::<bool>(),
        ) {
            let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
            let values: Vec<Option<Vec<u8>>> = ops
                .iter()
                .enumerate()
                .map(|(k, &(n, what))| match what {
                    0 => None,
                    1 => Some(b"{not json".to_vec()),
                    _ => Some(format!(r#"{{"name":"s{n}","url":"http://h{what}.test/{k}"}}"#).into_bytes()),
                })
                .collect();
            let records: Vec<Record<'_>> = ops
                .iter()
                .zip(&values)
                .enumerate()
                .map(|(k, (&(n, _), v))| Record {
                    epoch: 1,
                    partition: 0,
                    offset: k as i64,
                    key: Some(names[n as usize].as_bytes()),
                    format: None,
                    value: v.as_deref(),
                })
                .collect();
            let end = if end_known { ops.len() as i64 } else { i64::MAX };

            let mut one_by_one = assigned(end);
            let mut pool = SiteRecords::default();
            for r in &records {
                let said = read_record(&mut pool, r, &no_env);
                apply(&mut one_by_one, r, said);
            }
            reached_end(&mut one_by_one, 0, 1);

            let mut st = assigned(end);
            let mut readers = Readers::start(no_env);
            let ghost = br#"{"name":"ghost","url":"http://ghost.test/"}"#;
            for k in 0..stale {
                let r = Record {
                    epoch: 0,
                    partition: 0,
                    offset: k as i64,
                    key: Some(&b"ghost"[..]),
                    format: None,
                    value: Some(&ghost[..]),
                };
                readers.push(&r);
            }
            let mut at = 0usize;
            for cut in cuts.iter().chain(std::iter::once(&usize::MAX)) {
                let to = at.saturating_add(*cut).min(records.len());
                for r in &records[at..to] {
                    readers.push(r);
                }
                readers.flush();
                readers.take(&mut st, keep);
                at = to;
            }
            readers.end(0, 1);
            prop_assert!(!readers.is_idle() || st.parts[&0].loaded);
            readers.take(&mut st, 0);
            prop_assert!(readers.is_idle());
            prop_assert!(!st.parts[&0].sites.contains_key("ghost"));
            prop_assert_eq!(urls(&st), urls(&one_by_one));
            prop_assert!(st.parts[&0].loaded && st.dirty);
        }
    }

    #[test]
    fn an_end_is_taken_after_the_records_read_before_it() {
        let mut st = assigned(i64::MAX);
        let mut readers = Readers::start(no_env);
        let value = br#"{"name":"a","url":"http://a.test/"}"#;
        let r = Record {
            epoch: 1,
            partition: 0,
            offset: 0,
            key: Some(&b"a"[..]),
            format: None,
            value: Some(&value[..]),
        };
        readers.push(&r);
        readers.end(0, 1);
        // Whatever the threads have done by now, the end is not taken before the record.
        readers.take(&mut st, usize::MAX);
        assert_eq!(st.parts[&0].loaded, !st.parts[&0].sites.is_empty());
        readers.take(&mut st, 0);
        assert!(st.parts[&0].loaded && st.parts[&0].sites.contains_key("a"));
        // An end reached before the partition's assignment (epoch 0) is not this one's.
        let mut st = assigned(i64::MAX);
        readers.end(0, 0);
        readers.take(&mut st, 0);
        assert!(!st.parts[&0].loaded);
    }
}
