#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use api::config::{Cli, Command, ServerConfig};
use api::shutdown::signal_received;
use api::startup::Application;
use api::{healthcheck, logging};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Healthcheck(config)) => match healthcheck::probe(&config) {
            Ok(status) => {
                println!("healthy: {status}");
                ExitCode::SUCCESS
            }
            Err(reason) => {
                println!("unhealthy: {reason}");
                ExitCode::FAILURE
            }
        },
        None => match serve(cli.server) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("api: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

/// However long the drain took, the last log lines get this long.
const LAST_LOG_LINES_TIME: Duration = Duration::from_millis(100);

fn serve(config: ServerConfig) -> Result<(), String> {
    let log_flusher = logging::init(config.log_format, &config.log_filter)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|error| error.to_string())?;
    let drain_deadline = runtime.block_on(async {
        let application = Application::build(config)
            .await
            .map_err(|error| error.to_string())?;
        Ok::<_, String>(application.run_until(signal_received()).await)
    })?;
    // Within --shutdown-timeout, even if stdout never drains.
    log_flusher.stop_by(drain_deadline.max(Instant::now() + LAST_LOG_LINES_TIME));
    Ok(())
}
