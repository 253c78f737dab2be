//! A publisher that keeps every result it is given, for the paused-time producer tests.

use std::sync::Mutex;
use std::time::Duration;

use sitemon::domain::CheckResult;
use sitemon::ports::{PublishError, StatusPublisher};

#[derive(Default)]
pub struct Collect(pub Mutex<Vec<CheckResult>>);

impl StatusPublisher for Collect {
    async fn publish(&self, result: &CheckResult) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(result.clone());
        Ok(())
    }
    async fn flush(&self, _deadline: Duration) -> Result<(), PublishError> {
        Ok(())
    }
    fn is_connected(&self) -> bool {
        true
    }
}
