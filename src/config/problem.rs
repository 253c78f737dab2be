//! Config problems with their location, collected so that all of them are reported at once.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the config, at a field path such as `sites[3].interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// Line and column (1-based) in the file, when the path stands in it.
    pub at: Option<(usize, usize)>,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { path: path.into(), message: message.into(), at: None }
    }
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
            write!(f, "\n  {}", self.file.display())?;
            if let Some((line, col)) = p.at {
                write!(f, ":{line}:{col}")?;
            }
            if !p.path.is_empty() {
                write!(f, ": {}", p.path)?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}
