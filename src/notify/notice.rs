//! What a route tells its providers: one incident's event, a reminder, or a storm's grouped
//! messages (its start, its updates and its end).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::IncidentEvent;

/// How many sites a grouped message names; the rest are counted.
pub const NAMED: usize = 10;

/// Sites named in a grouped message (the first [`NAMED`]) and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sites {
    pub named: Vec<String>,
    pub count: usize,
}

impl Sites {
    pub fn of<'a>(all: impl IntoIterator<Item = &'a str>) -> Self {
        let mut named = Vec::new();
        let mut count = 0;
        for s in all {
            if named.len() < NAMED {
                named.push(s.to_owned());
            }
            count += 1;
        }
        Sites { named, count }
    }

    /// "a, b, c and 7 more".
    pub fn describe(&self) -> String {
        let list = self.named.join(", ");
        match self.count.saturating_sub(self.named.len()) {
            0 => list,
            more => format!("{list} and {more} more"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// An incident opened or closed, sent on its own.
    Event(IncidentEvent),
    /// An incident (its OPENED event) still open at `due`, a `repeat_every` after the last word.
    Reminder { opened: IncidentEvent, due: DateTime<Utc> },
    /// More than the threshold opened within the window: the storm's first message.
    StormStarted { storm_id: Uuid, opened: Sites },
    /// What changed while the storm lasts, folded (`seq` counts the storm's messages).
    StormUpdate { storm_id: Uuid, seq: u32, opened: Sites, closed: Sites, open: usize },
    /// Nothing opened for a window: the storm is over; what is still open, and whether every
    /// incident of its own (not sent alone) has closed.
    StormEnded { storm_id: Uuid, seq: u32, open: Sites, cleared: bool },
    /// The last of the storm's own incidents still open at its end has closed.
    StormCleared { storm_id: Uuid, seq: u32 },
    /// `sitemon notify test --route`: says nothing happened (`test_id` new each time).
    Test { route: String, test_id: Uuid },
}

impl Notice {
    /// A stable name of this message within its event or storm, for its delivery id.
    pub fn key(&self) -> String {
        match self {
            Notice::Event(e) => format!("event\n{}", e.event_id),
            Notice::Reminder { opened, due } => {
                format!("reminder\n{}\n{}", opened.event_id, due.timestamp_micros())
            }
            Notice::StormStarted { storm_id, .. } => format!("storm\n{storm_id}\n0"),
            Notice::Test { test_id, .. } => format!("test\n{test_id}"),
            Notice::StormUpdate { storm_id, seq, .. }
            | Notice::StormEnded { storm_id, seq, .. }
            | Notice::StormCleared { storm_id, seq } => {
                format!("storm\n{storm_id}\n{seq}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_messages_name_the_first_sites_and_count_the_rest() {
        let names: Vec<String> = (0..25).map(|i| format!("s{i}")).collect();
        let s = Sites::of(names.iter().map(String::as_str));
        assert_eq!((s.named.len(), s.count), (NAMED, 25));
        assert_eq!(s.describe(), "s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 and 15 more");
        assert_eq!(Sites::of(["a", "b"]).describe(), "a, b");
    }
}
