//! `hub-gateway`: see the crate docs (`lib.rs`) and `hub-gateway --help`.

use hub_runtime::telemetry::{self, LogOutput};
use hub_runtime::{Source, Trigger};
use local_gateway::app::{Gateway, shutdown_signal};
use local_gateway::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let command = cli.command.unwrap_or(Command::Serve {
        bind: None,
        port: None,
    });
    // Commands print their result on stdout, so their logs go to stderr.
    let output = match command {
        Command::Serve { .. } => LogOutput::Stdout,
        _ => LogOutput::Stderr,
    };
    let _telemetry = telemetry::init("hub-gateway", output);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hub-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.config, command))
}

async fn run(config: Option<std::path::PathBuf>, command: Command) -> ExitCode {
    let source = match Source::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string(), ExitCode::from(2)),
    };
    let mut gateway = match Gateway::new(source).await {
        Ok(g) => g,
        Err(e) => return fail(&e.to_string(), ExitCode::FAILURE),
    };
    match command {
        Command::Serve { bind, port } => {
            if let Some(bind) = bind {
                gateway.config.bind = bind;
            }
            if let Some(port) = port {
                gateway.config.port = port;
            }
            let listener = match gateway.bind().await {
                Ok(l) => l,
                Err(e) => return fail(&e.to_string(), ExitCode::FAILURE),
            };
            match gateway.serve(listener, shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string(), ExitCode::FAILURE),
            }
        }
        Command::Functions => {
            match serde_json::to_string_pretty(&gateway.function_infos()) {
                Ok(text) => println!("{text}"),
                Err(e) => return fail(&e.to_string(), ExitCode::FAILURE),
            }
            ExitCode::SUCCESS
        }
        Command::Invoke { name, data } => invoke(&gateway, &name, &data).await,
    }
}

async fn invoke(gateway: &Gateway, name: &str, data: &str) -> ExitCode {
    let Some(function) = gateway.function(name) else {
        let known: Vec<_> = gateway.functions.iter().map(|f| f.name()).collect();
        return fail(
            &format!("unknown function {name:?}; known: {}", known.join(", ")),
            ExitCode::from(2),
        );
    };
    let input: serde_json::Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => return fail(&format!("--data is not valid JSON: {e}"), ExitCode::from(2)),
    };
    let result = gateway
        .ctx
        .runs
        .track(name, Trigger::Cli, function.invoke(Trigger::Cli, input))
        .await;
    match result {
        Ok(report) => {
            println!(
                "{}",
                serde_json::json!({"function": name, "outcome": report.outcome, "summary": report.summary})
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({"function": name, "outcome": "failure", "summary": e.to_string()})
            );
            fail(&format!("{name} failed: {e}"), ExitCode::FAILURE)
        }
    }
}

fn fail(message: &str, code: ExitCode) -> ExitCode {
    eprintln!("hub-gateway: {message}");
    code
}
