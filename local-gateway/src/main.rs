//! `hub-gateway`: see the crate docs (`lib.rs`) and `hub-gateway --help`.

use hub_runtime::telemetry::{self, LogOutput};
use hub_runtime::{InvokeError, RunError, Source, Trigger};
use local_gateway::app::{FUNCTIONS, Gateway, shutdown_signal};
use local_gateway::cli::{Cli, Command, PageAction};
use local_gateway::page::Content;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let command = cli.command.unwrap_or(Command::Serve {
        bind: None,
        port: None,
        public_bind: None,
        public_port: None,
    });
    // Commands print their result on stdout, so their logs go to stderr.
    let output = match command {
        Command::Serve { .. } => LogOutput::Stdout,
        _ => LogOutput::Stderr,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hub-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Telemetry exports from tasks of this runtime, so it starts inside it and is flushed
    // (dropped) before the runtime stops.
    let telemetry = {
        let _inside = runtime.enter();
        telemetry::init("hub-gateway", output)
    };
    let code = runtime.block_on(run(cli.config, command));
    drop(telemetry);
    code
}

async fn run(config: Option<std::path::PathBuf>, command: Command) -> ExitCode {
    // Bad usage is answered before the store is opened (or created).
    let checked = match check(&command) {
        Ok(checked) => checked,
        Err(message) => return fail(&message, ExitCode::from(2)),
    };
    let source = match Source::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string(), ExitCode::from(2)),
    };
    let mut gateway = match Gateway::new(source).await {
        Ok(g) => g,
        Err(e) => return fail(&e.to_string(), ExitCode::FAILURE),
    };
    let code = execute(&mut gateway, command, checked).await;
    // The commands' run rows are queued like the gateway's: committed before the process ends.
    gateway.ctx.runs.flush().await;
    code
}

async fn execute(gateway: &mut Gateway, command: Command, checked: Checked) -> ExitCode {
    match command {
        Command::Serve {
            bind,
            port,
            public_bind,
            public_port,
        } => {
            let config = &mut gateway.config;
            config.bind = bind.unwrap_or(config.bind);
            config.port = port.unwrap_or(config.port);
            config.public_bind = public_bind.unwrap_or(config.public_bind);
            config.public_port = public_port.unwrap_or(config.public_port);
            match local_gateway::server::raise_fd_limit() {
                Ok(limit) => {
                    let cap = &mut gateway.config.conn_limits.max_connections;
                    // Leave room for the store, git, logs and the listeners themselves. The cap
                    // is per listener (so a flood on the public one cannot lock operators
                    // out), so both listeners' connections must fit.
                    let room = usize::try_from(limit.saturating_sub(64)).unwrap_or(usize::MAX) / 2;
                    if *cap > room {
                        tracing::warn!(
                            open_files = limit,
                            max_connections = room,
                            "HUB_MAX_CONNECTIONS lowered to fit the open-files limit"
                        );
                        *cap = room.max(1);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
            }
            let listeners = match gateway.bind().await {
                Ok(l) => l,
                Err(e) => return fail(&e.to_string(), ExitCode::FAILURE),
            };
            match gateway.clone().serve(listeners, shutdown_signal()).await {
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
        Command::Invoke { name, .. } => {
            let Checked::Input(input) = checked else {
                unreachable!("check() reads an invocation's input")
            };
            invoke(gateway, &name, input).await
        }
        Command::Backup { action } => local_gateway::backup_cli::run(gateway, action).await,
        Command::Page {
            action: PageAction::Build { out, .. },
        } => {
            let Checked::Page(content) = checked else {
                unreachable!("check() loads the page's content")
            };
            build_page(gateway, &content, &out).await
        }
    }
}

/// What a command needs that can be checked without the store.
enum Checked {
    Nothing,
    Input(serde_json::Value),
    Page(Box<Content>),
}

fn check(command: &Command) -> Result<Checked, String> {
    match command {
        Command::Invoke { name, data } => check_invocation(name, data).map(Checked::Input),
        Command::Page {
            action: PageAction::Build { content, .. },
        } => Content::load(content)
            .map(|c| Checked::Page(Box::new(c)))
            .map_err(|e| e.to_string()),
        _ => Ok(Checked::Nothing),
    }
}

/// The function exists and `--data` (JSON, `@file` or `-` for stdin) is a JSON object.
fn check_invocation(name: &str, data: &str) -> Result<serde_json::Value, String> {
    if !FUNCTIONS.iter().any(|f| f.name == name) {
        let known: Vec<_> = FUNCTIONS.iter().map(|f| f.name).collect();
        return Err(format!(
            "unknown function {name:?}; known: {}",
            known.join(", ")
        ));
    }
    let text = match data {
        "-" => std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read --data from stdin: {e}"))?,
        _ => match data.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --data file {path}: {e}"))?,
            None => data.to_owned(),
        },
    };
    match serde_json::from_str(&text) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(other) => Err(format!(
            "--data must be a JSON object, e.g. '{{}}', not {other}"
        )),
        Err(e) => Err(format!("--data is not valid JSON: {e}")),
    }
}

async fn invoke(gateway: &Gateway, name: &str, input: serde_json::Value) -> ExitCode {
    let Some(function) = gateway.function(name) else {
        return fail(&format!("unknown function {name:?}"), ExitCode::from(2));
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
                serde_json::json!({"function": name, "outcome": e.outcome(), "summary": e.to_string()})
            );
            // Input the function refuses is bad usage, like invalid JSON.
            let code = match e {
                InvokeError::BadInput(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            };
            fail(&format!("{name} failed: {e}"), code)
        }
    }
}

async fn build_page(gateway: &Gateway, content: &Content, out: &std::path::Path) -> ExitCode {
    for warning in content.warnings() {
        eprintln!("hub-gateway page: warning: {warning}");
    }
    match local_gateway::page::build(gateway, content, out).await {
        Ok(built) => {
            println!("{}", serde_json::json!(built));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string(), ExitCode::FAILURE),
    }
}

fn fail(message: &str, code: ExitCode) -> ExitCode {
    eprintln!("hub-gateway: {message}");
    code
}
