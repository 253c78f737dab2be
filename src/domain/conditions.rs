//! The conditions worth a message besides an outage, judged slot by slot on the site as a whole
//! like its outages (so they too depend on the results, not on how they were batched):
//! DEGRADED — most of a slot's successful checks slower than the site's `degraded_above`, for
//! `down_after` slots in a row, until `up_after` slots that are not; CERT_EXPIRING — a
//! certificate seen in a slot expiring within the site's `cert_warn_days`, until `down_after`
//! slots see none that does. A slot without a successful check leaves a condition as it was; one
//! whose checks no longer ask for it (no threshold, `cert_warn_days` 0, no certificate) ends one
//! under way.

use chrono::{DateTime, TimeDelta, Utc};

use super::incident::{Derived, EndReason, EventKind, Incident, IncidentKind};
use super::judging::Sample;
use super::{CheckStatus, DEFAULT_CERT_WARN_DAYS, DEFAULT_DOWN_AFTER, DEFAULT_UP_AFTER};

/// One condition of a site between batches: its current run of slots (positive: that many in a
/// row with the condition, negative: without), when the run began, and its open incident.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Condition {
    pub run: i32,
    pub since: Option<DateTime<Utc>>,
    pub incident: Option<Incident>,
}

/// What a slot says of a condition: whether it holds, the regions that say so, and in words;
/// `asked` is false when the slot's checks no longer ask for it (no threshold, `cert_warn_days`
/// 0, no certificate): that only ends a condition under way, it starts nothing.
struct Evidence {
    holds: bool,
    asked: bool,
    regions: Vec<String>,
    detail: String,
}

impl Evidence {
    fn not_asked() -> Self {
        Evidence { holds: false, asked: false, regions: Vec::new(), detail: String::new() }
    }
}

/// Most of the slot's successful checks that carry a `degraded_above` were slower than it. A
/// slot without a successful check says nothing (a failure says nothing of speed).
fn slowness(slot: &[Sample]) -> Option<Evidence> {
    let ok: Vec<&Sample> = slot.iter().filter(|s| s.status == CheckStatus::Success).collect();
    if ok.is_empty() {
        return None;
    }
    // (0, which only a record not written by sitemon carries, asks for nothing.)
    let timed: Vec<(&Sample, i64, u32)> = ok
        .iter()
        .filter_map(|s| Some((*s, s.total_us?, s.degraded_above_ms.filter(|ms| *ms > 0)?)))
        .collect();
    let Some(above) = timed.first().map(|t| t.2) else { return Some(Evidence::not_asked()) };
    let slow: Vec<&(&Sample, i64, u32)> =
        timed.iter().filter(|(_, total, above)| *total > i64::from(*above) * 1000).collect();
    let worst = slow.iter().map(|(_, total, _)| *total).max().unwrap_or(0);
    Some(Evidence {
        holds: slow.len() * 2 > timed.len(),
        asked: true,
        regions: slow.iter().map(|(s, _, _)| s.region.clone()).collect(),
        detail: format!("checks took up to {} ms (degraded above {above} ms)", worst / 1000),
    })
}

/// A certificate of the slot expires within its site's `cert_warn_days` of the check. A slot
/// without a successful check says nothing (a failed one may not have reached the certificate).
fn expiry(slot: &[Sample]) -> Option<Evidence> {
    if !slot.iter().any(|s| s.status == CheckStatus::Success) {
        return None;
    }
    let seen: Vec<(&Sample, DateTime<Utc>, u32)> = slot
        .iter()
        .filter_map(|s| Some((s, s.tls_not_after?, s.cert_warn_days.unwrap_or(DEFAULT_CERT_WARN_DAYS))))
        .filter(|(_, _, days)| *days > 0)
        .collect();
    if seen.is_empty() {
        return Some(Evidence::not_asked());
    }
    let soon: Vec<&(&Sample, DateTime<Utc>, u32)> = seen
        .iter()
        .filter(|(s, not_after, days)| *not_after - s.at < TimeDelta::days(i64::from(*days)))
        .collect();
    let first = soon.iter().map(|(_, t, _)| *t).min();
    Some(Evidence {
        holds: !soon.is_empty(),
        asked: true,
        regions: soon.iter().map(|(s, _, _)| s.region.clone()).collect(),
        detail: first.map_or_else(String::new, |t| format!("the certificate expires at {}", t.to_rfc3339())),
    })
}

/// Judges both conditions of `site_id` at the slot `now` (its samples, sorted by region).
/// DEGRADED opens after `down_after` slow slots and closes after `up_after` that are not;
/// CERT_EXPIRING opens at the first slot that sees such a certificate and closes after
/// `down_after` slots that see none (so backends or regions serving different certificates do
/// not make it flap).
pub(super) fn judge(
    site_id: &str,
    degraded: &mut Condition,
    cert: &mut Condition,
    now: DateTime<Utc>,
    slot: &[Sample],
    out: &mut Derived,
) {
    let threshold = |f: fn(&Sample) -> Option<u32>, default: u32| {
        slot.iter().find_map(f).filter(|n| *n > 0).map_or(default, |n| n.min(i32::MAX as u32)) as i32
    };
    let (down_after, up_after) =
        (threshold(|s| s.down_after, DEFAULT_DOWN_AFTER), threshold(|s| s.up_after, DEFAULT_UP_AFTER));
    let url = slot.first().map(|s| s.url.as_str()).unwrap_or_default();
    if let Some(e) = slowness(slot) {
        degraded.fold(site_id, IncidentKind::Degraded, (down_after, up_after), now, url, e, out);
    }
    if let Some(e) = expiry(slot) {
        cert.fold(site_id, IncidentKind::CertExpiring, (1, down_after), now, url, e, out);
    }
}

impl Condition {
    /// One slot's evidence: the run goes on or turns; `open_after` slots with the condition
    /// open its incident, `close_after` without close it.
    #[allow(clippy::too_many_arguments)]
    fn fold(
        &mut self,
        site_id: &str,
        kind: IncidentKind,
        (open_after, close_after): (i32, i32),
        now: DateTime<Utc>,
        url: &str,
        e: Evidence,
        out: &mut Derived,
    ) {
        // A check that no longer asks for the condition ends one under way; at rest it changes
        // nothing (the track stays as it is).
        if !e.asked && self.run <= 0 && self.incident.is_none() {
            return;
        }
        if e.holds == (self.run > 0) && self.run != 0 {
            self.run = if e.holds { self.run.saturating_add(1) } else { self.run.saturating_sub(1) };
        } else {
            self.run = if e.holds { 1 } else { -1 };
            self.since = Some(now);
        }
        match (&mut self.incident, e.holds) {
            (Some(inc), true) => {
                inc.failed_checks += 1;
                for r in e.regions {
                    if !inc.regions.contains(&r) {
                        inc.regions.push(r);
                    }
                }
                inc.regions.sort();
                out.touch(inc);
            }
            (Some(inc), false) if -self.run >= close_after => {
                inc.ended_at = Some(self.since.unwrap_or(now).max(inc.started_at));
                inc.end_reason = Some(EndReason::Recovered);
                out.event(EventKind::Closed, now, inc);
                self.incident = None;
            }
            (None, true) if self.run >= open_after => {
                let started_at = self.since.unwrap_or(now);
                let mut regions = e.regions;
                regions.sort();
                regions.dedup();
                let incident = Incident {
                    incident_id: Incident::kind_id_for(site_id, kind, started_at),
                    kind,
                    site_id: site_id.to_owned(),
                    region: None,
                    url: url.to_owned(),
                    started_at,
                    confirmed_at: now,
                    ended_at: None,
                    end_reason: None,
                    regions,
                    failure_kind: None,
                    error: Some(e.detail),
                    failed_checks: i64::from(self.run),
                };
                out.event(EventKind::Opened, now, &incident);
                self.incident = Some(incident);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CheckResult, Judging, SiteTracks};
    use chrono::TimeZone;

    const T0: i64 = 1_800_000_000;

    fn at(slot: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(T0 + slot * 10, 0).unwrap()
    }

    /// One result of `region` per slot: `s` slow success, `f` fast success, `x` failure.
    fn results(region: &str, pattern: &str, f: impl Fn(&mut CheckResult, i64)) -> Vec<CheckResult> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let t = at(i as i64);
                let status = if c == 'x' { CheckStatus::Failure } else { CheckStatus::Success };
                let mut r = CheckResult::new("s", "https://s/", region, t, t, status);
                r.interval_ms = Some(10_000);
                r.total_us = Some(if c == 's' { 2_000_000 } else { 50_000 });
                f(&mut r, i as i64);
                r
            })
            .collect()
    }

    fn fold(rs: &[CheckResult]) -> (SiteTracks, Derived) {
        let mut tracks = SiteTracks::new("s");
        let mut out = Derived::default();
        tracks.fold(rs, &Judging::default(), &mut out);
        (tracks, out)
    }

    fn events(d: &Derived) -> Vec<(EventKind, IncidentKind, i64)> {
        d.events.iter().map(|e| (e.kind, e.incident.kind, (e.at.timestamp() - T0) / 10)).collect()
    }

    #[test]
    fn slow_checks_for_down_after_slots_open_degraded_until_up_after_fast_ones() {
        let slow = |r: &mut CheckResult, _| {
            r.degraded_above_ms = Some(1000);
            (r.down_after, r.up_after) = (Some(3), Some(2));
        };
        let (tracks, d) = fold(&results("eu", "ffsssxsfsffs", slow));
        // (Slot 0 only makes the region known.) Slow from slot 2; the failure at 5 says
        // nothing of speed; open at the third slow slot (4); one fast slot (7) is not enough to
        // close, two (9, 10) are.
        assert_eq!(
            events(&d),
            [(EventKind::Opened, IncidentKind::Degraded, 4), (EventKind::Closed, IncidentKind::Degraded, 10)]
        );
        let inc = &d.events[1].incident;
        assert_eq!((inc.started_at, inc.ended_at, inc.region.as_deref()), (at(2), Some(at(9)), None));
        assert_eq!(inc.incident_id, Incident::kind_id_for("s", IncidentKind::Degraded, at(2)));
        assert_eq!(inc.failed_checks, 5, "slow slots 2, 3, 4, 6 and 8");
        assert!(inc.error.as_deref().unwrap().contains("2000 ms"), "{:?}", inc.error);
        assert_eq!((tracks.site.degraded.run, tracks.site.degraded.incident.is_none()), (1, true));
        assert!(d.events.iter().all(|e| e.incident.kind != IncidentKind::Down), "slowness is no outage");
    }

    #[test]
    fn a_site_without_degraded_above_is_never_degraded() {
        let (_, d) = fold(&results("eu", "ssssss", |_, _| {}));
        assert!(d.events.is_empty(), "{:?}", events(&d));
    }

    #[test]
    fn slowness_takes_most_of_a_slots_regions() {
        let slow = |r: &mut CheckResult, _| r.degraded_above_ms = Some(1000);
        let mut rs = results("eu", "ssss", slow);
        rs.extend(results("us", "ffff", slow));
        rs.sort_by_key(|r| (r.scheduled_at, r.region.clone()));
        assert!(fold(&rs).1.events.is_empty(), "one region of two is no majority");
        rs.extend(results("ap", "ssss", slow));
        rs.sort_by_key(|r| (r.scheduled_at, r.region.clone()));
        let (_, d) = fold(&rs);
        // (Each region's first result only makes it known: judged from slot 1.)
        assert_eq!(events(&d), [(EventKind::Opened, IncidentKind::Degraded, 3)]);
        assert_eq!(d.events[0].incident.started_at, at(1));
        assert_eq!(d.events[0].incident.regions, ["ap", "eu"]);
    }

    #[test]
    fn a_certificate_near_its_expiry_opens_cert_expiring_until_a_renewed_one_is_seen() {
        // A failed check saw no certificate: it says nothing.
        let expiring = |r: &mut CheckResult, i: i64| {
            let days = if i < 3 { 10 } else { 90 };
            if r.status == CheckStatus::Success {
                r.tls_not_after = Some(r.scheduled_at + TimeDelta::days(days));
            }
        };
        // Closed once down_after (3) slots in a row saw the renewed one: 4, 5 and 6.
        let (_, d) = fold(&results("eu", "fffxfff", expiring));
        assert_eq!(
            events(&d),
            [
                (EventKind::Opened, IncidentKind::CertExpiring, 1),
                (EventKind::Closed, IncidentKind::CertExpiring, 6)
            ]
        );
        assert_eq!(d.events[1].incident.ended_at, Some(at(4)));
        assert!(d.events[0].incident.error.as_deref().unwrap().starts_with("the certificate expires at "));
        // Warned 5 days ahead instead: 10 days is far enough; 0: never.
        for days in [5, 0] {
            let (_, d) = fold(&results("eu", "ffff", |r, i| {
                expiring(r, i);
                r.cert_warn_days = Some(days);
            }));
            assert!(d.events.is_empty(), "cert_warn_days {days}: {:?}", events(&d));
        }
    }

    /// Backends (or regions) serving an old and a renewed certificate by turns: one incident,
    /// not one per pair of slots.
    #[test]
    fn certificates_that_alternate_do_not_flap() {
        let (_, d) = fold(&results("eu", "ffffffffff", |r, i| {
            let days = if i % 2 == 0 { 5 } else { 60 };
            r.tls_not_after = Some(r.scheduled_at + TimeDelta::days(days));
        }));
        assert_eq!(events(&d), [(EventKind::Opened, IncidentKind::CertExpiring, 2)]);
    }

    /// The operator stops asking (no `degraded_above`, `cert_warn_days: 0`, or the site moved
    /// to plain HTTP): the incident under way closes, it does not stay open for ever.
    #[test]
    fn a_condition_no_longer_asked_for_closes() {
        let asked = |on: bool| {
            move |r: &mut CheckResult, i: i64| {
                if i < 4 {
                    r.degraded_above_ms = Some(1000);
                    r.tls_not_after = Some(r.scheduled_at + TimeDelta::days(3));
                } else if on {
                    r.degraded_above_ms = None;
                    r.cert_warn_days = Some(0);
                    r.tls_not_after = Some(r.scheduled_at + TimeDelta::days(3));
                }
            }
        };
        for on in [true, false] {
            let (tracks, d) = fold(&results("eu", "fsssssssss", asked(on)));
            let got = events(&d);
            for kind in [IncidentKind::Degraded, IncidentKind::CertExpiring] {
                let closed = got.iter().filter(|(k, ik, _)| *k == EventKind::Closed && *ik == kind).count();
                assert_eq!(closed, 1, "{kind:?}, thresholds dropped {on}: {got:?}");
            }
            assert!(tracks.site.degraded.incident.is_none() && tracks.site.cert.incident.is_none());
        }
        // A site never asked: its conditions stay at rest (nothing to store).
        let (tracks, _) = fold(&results("eu", "ssss", |_, _| {}));
        assert_eq!((tracks.site.degraded.clone(), tracks.site.cert.clone()), Default::default());
    }

    #[test]
    fn a_condition_id_is_never_an_outage_id() {
        let t = at(0);
        for kind in [IncidentKind::Degraded, IncidentKind::CertExpiring] {
            assert_ne!(Incident::kind_id_for("s", kind, t), Incident::id_for("s", Some(kind.as_str()), t));
            assert_ne!(Incident::kind_id_for("s", kind, t), Incident::id_for("s", None, t));
        }
    }
}
