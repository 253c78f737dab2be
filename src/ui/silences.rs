//! `sitemon silence list`: one line per silence in force or to come.

use crate::notify::{Silence, Window};

pub fn silences_table(silences: &[Silence]) -> String {
    if silences.is_empty() {
        return "no silences\n".to_owned();
    }
    let cells: Vec<[String; 5]> = silences
        .iter()
        .map(|s| {
            let m = &s.maintenance;
            let (from, until) = match &m.window {
                Window::Once { from, until } => (from.to_rfc3339(), until.to_rfc3339()),
                Window::Weekly { .. } => ("-".to_owned(), "-".to_owned()),
            };
            let sites = if m.sites.is_empty() {
                "*".to_owned()
            } else {
                m.sites.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
            };
            [s.id.to_string(), sites, from, until, m.reason.clone()]
        })
        .collect();
    super::table::columns(["ID", "SITES", "FROM", "UNTIL", "REASON"], &cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{Maintenance, Pattern};
    use chrono::{TimeZone, Utc};

    #[test]
    fn one_line_per_silence() {
        let s = Silence {
            id: uuid::Uuid::from_u128(1),
            maintenance: Maintenance {
                sites: vec![Pattern::new("db-*").unwrap(), Pattern::new("api").unwrap()],
                window: Window::Once {
                    from: Utc.with_ymd_and_hms(2026, 12, 4, 2, 0, 0).unwrap(),
                    until: Utc.with_ymd_and_hms(2026, 12, 4, 4, 0, 0).unwrap(),
                },
                reason: "db upgrade".into(),
            },
        };
        let t = silences_table(&[s]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID") && lines[0].contains("REASON"), "{t}");
        assert!(
            lines[1].contains("db-*,api")
                && lines[1].contains("2026-12-04T02:00:00+00:00")
                && lines[1].ends_with("db upgrade"),
            "{t}"
        );
        assert_eq!(silences_table(&[]), "no silences\n");
    }
}
