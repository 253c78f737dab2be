//! The `sitemon` binary: parse the command line, run the subcommand, map errors to exit codes.

use clap::Parser;
use clap::error::ErrorKind;

use sitemon::cli::Cli;
use sitemon::config::ConfigError;
use sitemon::{app, exit, telemetry};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => exit::OK,
                _ => exit::USAGE,
            };
            std::process::exit(code);
        }
    };
    telemetry::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = match runtime.block_on(app::run(cli.command, cli.listen)) {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<ConfigError>() {
            Some(config_error) => {
                eprintln!("error: {config_error}");
                exit::USAGE
            }
            None => {
                eprintln!("error: {e:#}");
                exit::FAILURE
            }
        },
    };
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
