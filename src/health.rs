//! Liveness and readiness as the runners see them: shared flags the ops endpoint reports.

use std::sync::Mutex;

/// Why the process is not ready, or `None` when it is.
#[derive(Debug, Default)]
pub struct Health {
    not_ready: Mutex<Option<String>>,
}

impl Health {
    /// Starts not ready: nothing has been proven to work yet.
    pub fn starting(reason: &str) -> Self {
        Health { not_ready: Mutex::new(Some(reason.to_owned())) }
    }

    pub fn ready(&self) {
        *self.not_ready.lock().expect("health lock") = None;
    }

    pub fn not_ready(&self, reason: impl Into<String>) {
        *self.not_ready.lock().expect("health lock") = Some(reason.into());
    }

    /// `Ok` when ready, else the reason.
    pub fn readiness(&self) -> Result<(), String> {
        match &*self.not_ready.lock().expect("health lock") {
            None => Ok(()),
            Some(r) => Err(r.clone()),
        }
    }
}
