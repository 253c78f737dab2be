//! What a member of its region's group on the sites topic holds: the sites of each assigned
//! partition (read from its records, whoever wrote them), the list last sent to the producer and
//! whether the producer took it, and which partitions are the producer's to hand on.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::sites_topic::FORMAT;
use crate::config::{Env, SiteRecords};
use crate::domain::Site;
use crate::producer::NewList;

/// A partition's sites by name (a fast keyed hash: a million are taken on one thread).
pub(super) type Sites = HashMap<String, Site, foldhash::fast::RandomState>;

/// One assigned partition.
pub(super) struct Part {
    /// Its sites that read well, by name.
    pub(super) sites: Sites,
    /// Read to the end it had when assigned: its sites go to the producer from then on.
    pub(super) loaded: bool,
    /// Where the previous owner's checks ended (its commit), used when the sites are first taken.
    pub(super) resume: Option<i64>,
    /// Its sites are in the list the producer runs.
    pub(super) applied: bool,
    /// Its end when assigned (the offset after the last record).
    pub(super) end: i64,
    /// When it was assigned: unread for long, it no longer holds the others' sites back.
    pub(super) assigned_at: Instant,
    /// The [`State::epoch`] of its assignment.
    pub(super) epoch: u64,
}

/// A list sent to the producer whose effect it has not confirmed yet.
pub(super) struct Pending {
    pub(super) applied: oneshot::Receiver<i64>,
    pub(super) parts: Vec<i32>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) parts: BTreeMap<i32, Part>,
    pub(super) pending: Option<Pending>,
    /// A change the producer has not been sent yet.
    pub(super) dirty: bool,
    /// Counts the assignments: a record read before its partition's is not taken.
    pub(super) epoch: u64,
}

/// Forgets the revoked `parts`; returns those whose sites the producer has or was sent (the
/// others it never checked: committing for them would hide the previous owner's checkpoint).
pub(super) fn remove_revoked(st: &mut State, parts: &[i32]) -> Vec<(i32, bool)> {
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

/// Sends the producer the sites of every partition read to its end; false when the producer is
/// gone.
pub(super) fn send(st: &mut State, to: &mpsc::Sender<NewList>) -> bool {
    let mut list = NewList::default();
    let loaded: Vec<(i32, &Part)> =
        st.parts.iter().filter(|(_, part)| part.loaded).map(|(&p, part)| (p, part)).collect();
    let parts: Vec<i32> = loaded.iter().map(|&(p, _)| p).collect();
    // A million sites take a third of a second to copy: every other partition's on a second
    // thread.
    let copy = |first: usize| -> Vec<Site> {
        loaded.iter().skip(first).step_by(2).flat_map(|(_, part)| part.sites.values().cloned()).collect()
    };
    list.sites = match loaded.iter().map(|(_, part)| part.sites.len()).sum::<usize>() < COPY_APART {
        true => loaded.iter().flat_map(|(_, part)| part.sites.values().cloned()).collect(),
        false => std::thread::scope(|s| {
            let second = s.spawn(|| copy(1));
            let mut sites = copy(0);
            sites.extend(second.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
            sites
        }),
    };
    for (_, part) in &loaded {
        if let (false, Some(from)) = (part.applied, part.resume) {
            list.resume.extend(part.sites.keys().map(|name| (name.clone(), from)));
        }
    }
    drop(loaded);
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
pub(super) enum Taken {
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
pub(super) fn confirm(st: &mut State, wait: Duration) -> Taken {
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

/// One record of the sites topic, as any client may have written it.
pub(super) struct Record<'a> {
    /// The [`State::epoch`] when it was read.
    pub(super) epoch: u64,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: Option<&'a [u8]>,
    /// Its `sitemon-format` header.
    pub(super) format: Option<&'a [u8]>,
    pub(super) value: Option<&'a [u8]>,
}

/// What one record says of its site, read apart from the state (so on any thread).
pub(super) enum Said {
    /// Nothing to take: no site name, a format this producer does not read, or a definition with
    /// problems (logged; the site's last good definition stays).
    Nothing,
    /// A tombstone: the site leaves.
    Removed,
    /// The site's new definition.
    Defined(Site),
}

/// Sites sent are copied on two threads from this many on.
const COPY_APART: usize = 10_000;

/// Reads what `r` says of its site; its problems are logged (name and field, never a value).
pub(super) fn read_record(records: &mut SiteRecords, r: &Record<'_>, env: Env) -> Said {
    let Some(name) = r.key.and_then(|k| std::str::from_utf8(k).ok()) else {
        tracing::error!(
            partition = r.partition,
            offset = r.offset,
            "sites topic: a record without a site name as its key; skipped"
        );
        return Said::Nothing;
    };
    if r.format.is_some_and(|f| f != FORMAT.as_bytes()) {
        tracing::error!(
            site = name,
            "sites topic: a record in a format this producer does not read; upgrade it (the site's last definition is kept)"
        );
        return Said::Nothing;
    }
    let Some(value) = r.value else { return Said::Removed };
    match records.read(name, value, env) {
        Ok(site) => Said::Defined(site),
        Err(problems) => {
            for p in problems {
                tracing::error!(site = name, field = %p.path, problem = %p.message, "sites topic: a site definition with a problem; its last good definition is kept");
            }
            Said::Nothing
        }
    }
}

/// The end of partition `p`, reached when this member's assignments numbered `epoch`: its sites
/// go to the producer from then on.
pub(super) fn reached_end(st: &mut State, p: i32, epoch: u64) {
    if let Some(part) = st.parts.get_mut(&p).filter(|part| !part.loaded && part.epoch <= epoch) {
        part.loaded = true;
        st.dirty = true;
    }
}

/// Takes what record `r` said into its partition's sites. A record read before its partition
/// was last assigned (`r.epoch`) belongs to an earlier assignment: the partition is read again
/// from its start.
pub(super) fn apply(st: &mut State, r: &Record<'_>, said: Said) {
    let State { parts, dirty, .. } = st;
    let Some(part) = parts.get_mut(&r.partition).filter(|part| part.epoch <= r.epoch) else { return };
    if r.offset + 1 >= part.end && !part.loaded {
        part.loaded = true;
        *dirty = true;
    }
    let name = || r.key.and_then(|k| std::str::from_utf8(k).ok()).unwrap_or_default();
    match said {
        Said::Nothing => return,
        Said::Removed => {
            part.sites.remove(name());
        }
        Said::Defined(site) => {
            part.sites.insert(name().to_owned(), site);
        }
    }
    *dirty |= part.loaded;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One record read and taken.
    fn take_record(st: &mut State, r: Record<'_>, env: Env) {
        let said = read_record(&mut SiteRecords::default(), &r, env);
        apply(st, &r, said);
    }

    fn part(loaded: bool, applied: bool) -> Part {
        Part {
            sites: Sites::default(),
            loaded,
            resume: None,
            applied,
            end: 0,
            assigned_at: Instant::now(),
            epoch: 0,
        }
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
                take_record(st, Record { epoch: 0, partition: 0, offset, key, format, value }, &env)
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
