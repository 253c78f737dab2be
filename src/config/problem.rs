//! Config problems with their location, collected so that all of them are reported at once.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the config, at a field path such as `sites[3].interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Every problem found in one config file. Maps to exit code 64.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "{}: {n} problem{} in config", self.file.display(), if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            if p.path.is_empty() {
                write!(f, "\n  {}: {}", self.file.display(), p.message)?;
            } else {
                write!(f, "\n  {}: {}: {}", self.file.display(), p.path, p.message)?;
            }
        }
        Ok(())
    }
}
