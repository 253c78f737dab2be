//! Config problems with their location, collected so that all of them are reported at once.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with the config, at a field path such as `sites[3].interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// Line and column (1-based) in the file, when the path stands in it; column 0 when only the
    /// line is known (a CSV row).
    pub at: Option<(usize, usize)>,
    /// The file the problem stands in when it is not the config file itself (a `sites_file`).
    pub file: Option<PathBuf>,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { path: path.into(), message: message.into(), at: None, file: None }
    }

    /// Where the problem stands: `file[:line[:column]]`, with `config` the config file (the file
    /// of every problem that names none of its own).
    pub fn place(&self, config: &Path) -> String {
        let file = self.file.as_deref().unwrap_or(config).display();
        match self.at {
            Some((line, 0)) => format!("{file}:{line}"),
            Some((line, col)) => format!("{file}:{line}:{col}"),
            None => file.to_string(),
        }
    }
}

/// The "file" of problems found in a command's arguments: they have no line to point at.
pub const COMMAND_LINE: &str = "command line";

/// Every problem found in one config file (and the site file it names). Maps to exit code 64.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// Problems with a command's arguments (`--from`, `sitemon check`'s URL and flags), named by
    /// their flag; no place in a file is shown.
    pub fn command_line(mut problems: Vec<Problem>) -> Self {
        for p in &mut problems {
            (p.at, p.file) = (None, None);
        }
        ConfigError { file: PathBuf::from(COMMAND_LINE), problems }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        if self.file == Path::new(COMMAND_LINE) {
            write!(f, "{n} problem{} on the command line", if n == 1 { "" } else { "s" })?;
            for p in &self.problems {
                write!(f, "\n  {}: {}", p.path, p.message)?;
            }
            return Ok(());
        }
        write!(f, "{}: {n} problem{} in config", self.file.display(), if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  {}", p.place(&self.file))?;
            if !p.path.is_empty() {
                write!(f, ": {}", p.path)?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}
