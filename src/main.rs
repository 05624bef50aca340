#![forbid(unsafe_code)]

use std::process::ExitCode;

use api::config::{Cli, Command, ServerConfig};
use api::server::shutdown_signal;
use api::startup::Application;
use api::{healthcheck, telemetry};
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

fn serve(config: ServerConfig) -> Result<(), String> {
    let _log_flusher = telemetry::init(config.log_format, &config.log_filter)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|error| error.to_string())?;
    runtime.block_on(async {
        let application = Application::build(config)
            .await
            .map_err(|error| error.to_string())?;
        application.run_until(shutdown_signal()).await;
        Ok(())
    })
}
