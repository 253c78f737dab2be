//! Alerts, as pure logic (the groundwork of `sitemon notify`): which routes take an incident
//! event and the delivery to each of their providers ([`route`]), whether a maintenance window
//! or a silence holds it back ([`silence`]), whether it belongs to a storm and is folded into
//! grouped messages ([`storm`]), when a reminder is due ([`reminder`]), and the words and the
//! request body each provider is sent ([`render`]). Around it: `notifier` (the loop that reads
//! the events and keeps the deliveries through the `DeliveryStore` port) and `providers` (the
//! senders that speak to each provider).

#[cfg(test)]
pub(crate) mod fixtures;
pub mod notice;
pub mod outgoing;
pub mod planner;
pub mod reminder;
pub mod render;
pub mod route;
pub mod silence;
pub mod storm;

pub use notice::{Notice, Sites};
pub use outgoing::{Channel, Claimed, LastDelivery, Outcome, Outgoing, backoff};
pub use planner::Planner;
pub use render::{Message, email_body, pagerduty_body, slack_body, webhook_body};
pub use route::{Delivery, Pattern, Route, Scope, plan};
pub use silence::{Maintenance, Silence, Window, silenced};
pub use storm::{Storm, StormPolicy};
