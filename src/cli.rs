//! Command-line interface: subcommands and the flags that say how this process behaves.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use clap::{Args, Parser, Subcommand};

use crate::config;
use crate::telemetry::LogFormat;
use crate::ui::{DEFAULT_LIMIT, ReportFormat, SiteState, StatusQuery, StatusSort};

/// Website-availability monitor: checks sites on precise schedules, ships every result as Avro
/// through Apache Kafka, and keeps the latest status and full history in PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "sitemon", version, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(long, value_enum, default_value = "plain", global = true, env = "SITEMON_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Serve /healthz, /readyz and /metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long, global = true, env = "SITEMON_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every site on its interval and publish the results to Kafka.
    Producer(ProducerArgs),
    /// Read results from Kafka and store them in PostgreSQL.
    Consumer(ConsumerArgs),
    /// Read incident events from Kafka and deliver them to the providers of their routes.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Notify(NotifyArgs),
    /// Hold back alerts for some sites for a while (recorded as silenced, not sent).
    #[command(subcommand)]
    Silence(SilenceCommand),
    /// Apply the embedded database migrations (safe to run again).
    Migrate(ConfigArg),
    /// Producer and consumer in one process on an embedded SQLite store: no Kafka, no PostgreSQL.
    Run(RunArgs),
    /// Check one URL now and print what the check saw; exit 0 when up, 2 when down.
    Check(CheckArgs),
    /// Show the latest status of every site (from PostgreSQL if configured, else SQLite).
    Status(StatusArgs),
    /// One site's SLA summary over a window (uptime per UTC day, incidents); its raw results as
    /// CSV or JSON.
    Report(ReportArgs),
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The site list on the compacted Kafka topic `kafka.sites_topic`.
    #[command(subcommand)]
    Sites(SitesCommand),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and report every problem; connects to nothing.
    Check(ConfigArg),
}

#[derive(Debug, Subcommand)]
pub enum SitesCommand {
    /// Validate a site list as `config check` does, print how it differs from the sites topic,
    /// and publish only the changes (a tombstone for each site removed).
    Apply(SitesApplyArgs),
    /// Print how a site list differs from the sites topic; publishes nothing.
    Diff(SitesFileArgs),
    /// Print the sites on the sites topic.
    List(SitesListArgs),
}

#[derive(Debug, Args)]
pub struct SitesFileArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The site list: CSV or YAML, as a `sites_file` (the config's `defaults:` apply).
    #[arg(short, long)]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct SitesApplyArgs {
    #[command(flatten)]
    pub list: SitesFileArgs,
    /// Partitions of the sites topic when `apply` creates it (an existing topic keeps its
    /// count): at most this many producers of a region can share its sites.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
}

#[derive(Debug, Args)]
pub struct SitesListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print each site's definition as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Time allowed to finish in-flight checks and store their results after SIGINT/SIGTERM.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Print log lines instead of the refreshing table, even on a terminal.
    #[arg(long)]
    pub no_table: bool,
    /// Also read the site list again when the config file changes (SIGHUP always does).
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The URL to check (http or https).
    pub url: String,
    /// Regex that must occur in the body.
    #[arg(long)]
    pub pattern: Option<String>,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Limit for the whole check.
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON instead of a table: every row (filters apply, no cap), by site.
    #[arg(long)]
    pub json: bool,
    /// Only rows in these states (repeat, or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub state: Vec<SiteState>,
    /// Only sites whose name matches one of these globs (`shop-*`; repeat for more).
    #[arg(long)]
    pub site: Vec<String>,
    /// Only these regions (repeat, or separate with commas).
    #[arg(long, value_delimiter = ',')]
    pub region: Vec<String>,
    /// Order of the table: problems first (`state`), longest in their state first (`since`), or
    /// by name (`site`).
    #[arg(long, value_enum, default_value = "state")]
    pub sort: StatusSort,
    /// Most rows in the table (0: all).
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    pub limit: usize,
}

impl StatusArgs {
    /// What `status` was asked to show; a site pattern that is not a glob is a usage problem (64).
    pub fn query(&self) -> Result<StatusQuery, config::ConfigError> {
        let mut problems = Vec::new();
        let sites = self
            .site
            .iter()
            .filter_map(|p| {
                crate::notify::Pattern::new(p)
                    .map_err(|e| problems.push(config::Problem::new("--site", e)))
                    .ok()
            })
            .collect();
        if !problems.is_empty() {
            return Err(config::ConfigError::command_line(problems));
        }
        Ok(StatusQuery {
            states: self.state.clone(),
            sites,
            regions: self.region.clone(),
            sort: self.sort,
            limit: (self.limit > 0).then_some(self.limit),
        })
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The site (its `name` in the config).
    #[arg(long)]
    pub site: String,
    /// Start of the window, included: RFC 3339 (2026-01-01T12:00:00Z) or a date (midnight UTC).
    /// Default: 24 hours before --to.
    #[arg(long, value_parser = instant)]
    pub from: Option<DateTime<Utc>>,
    /// End of the window, excluded, in the same forms. Default: now.
    #[arg(long, value_parser = instant)]
    pub to: Option<DateTime<Utc>>,
    /// text: the SLA summary; csv: the raw results (the summary on stderr); json: one object
    /// with the summary, days, incidents and raw results.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

/// A moment on the command line: RFC 3339, or a date meaning its midnight UTC.
fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) => Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()),
        Err(_) => Err("expected an RFC 3339 time (2026-01-01T12:00:00Z) or a date (2026-01-01)".to_owned()),
    }
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The YAML config file.
    #[arg(short, long, env = "SITEMON_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct ProducerArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Check every site once, wait for the broker's acknowledgements, and exit.
    #[arg(long)]
    pub once: bool,
    /// Also read the site list again when the config file changes (SIGHUP always does).
    #[arg(long, conflicts_with = "once")]
    pub watch: bool,
    /// Time allowed to finish in-flight checks and deliveries after SIGINT/SIGTERM.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

#[derive(Debug, Args)]
pub struct ConsumerArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Exit once the topic is drained: assigned and nothing new for this long (e.g. `5s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub exit_when_idle: Option<Duration>,
    /// Time allowed to finish storing the batch in hand after SIGINT/SIGTERM.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub action: Option<NotifyAction>,
    /// The YAML config file (required unless a subcommand takes its own).
    #[arg(short, long, env = "SITEMON_CONFIG", required = true)]
    pub config: Option<PathBuf>,
    /// Exit once the events topic is drained and every delivery finished, after nothing new for
    /// this long (e.g. `5s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub exit_when_idle: Option<Duration>,
    /// Time allowed to finish the requests in hand after SIGINT/SIGTERM.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Add a silence; prints its id.
    Add(SilenceAddArgs),
    /// The silences in force or to come.
    List(ConfigArg),
    /// Remove a silence by its id.
    Remove(SilenceRemoveArgs),
}

#[derive(Debug, Args)]
pub struct SilenceAddArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A site name pattern (`*`, `?`, `[...]`); repeat for several; at least one (`'*'`: every
    /// site).
    #[arg(long = "site", required = true)]
    pub sites: Vec<String>,
    /// How long it lasts (e.g. `2h`).
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    pub length: Duration,
    /// When it starts: RFC 3339 or a date (midnight UTC). Default: now.
    #[arg(long, value_parser = instant)]
    pub from: Option<DateTime<Utc>>,
    /// Why (shown with every message it holds back).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct SilenceRemoveArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The id `silence add` printed.
    pub id: uuid::Uuid,
}

#[derive(Debug, Subcommand)]
pub enum NotifyAction {
    /// Send a test message to every provider of a route now, and print each one's answer
    /// (exit 0 when all accepted it).
    Test(NotifyTestArgs),
}

#[derive(Debug, Args)]
pub struct NotifyTestArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The route's `name`.
    #[arg(long)]
    pub route: String,
}
