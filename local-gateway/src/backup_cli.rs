//! `hub-gateway backup …`: minio-backup from the command line. Results are JSON on stdout,
//! progress on a terminal's stderr; exit 0 when all is well, 1 when a backup, its check or a
//! restore fails, 2 on bad usage (an unknown set, a bad time).

use crate::app::Gateway;
use crate::cli::BackupAction;
use crate::progress;
use hub_runtime::{InvokeError, Report, RunError, Trigger};
use minio_backup::restore::RestoreTo;
use minio_backup::target::Progress;
use minio_backup::{Backup, BackupError};
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("hub-gateway backup: {message}");
    ExitCode::from(code)
}

fn failed(e: &BackupError) -> ExitCode {
    let code = if matches!(e, BackupError::UnknownSet(_)) {
        2
    } else {
        1
    };
    fail(&e.to_string(), code)
}

pub async fn run(gateway: &Gateway, action: BackupAction) -> ExitCode {
    let backup = match Backup::from_context(&gateway.ctx) {
        Ok(b) => b,
        Err(e) => return fail(&e.to_string(), 2),
    };
    let sets = |only: &Option<String>| -> Result<Vec<String>, ExitCode> {
        let all = backup.set_names();
        match only {
            Some(s) if !all.contains(s) => Err(fail(
                &format!("no backup set named {s:?}; sets: {}", all.join(", ")),
                2,
            )),
            Some(s) => Ok(vec![s.clone()]),
            None => Ok(all),
        }
    };
    match action {
        BackupAction::Run { set } => {
            if let Err(code) = sets(&set) {
                return code;
            }
            let (report, finish) = progress::per_set();
            let ran = gateway
                .ctx
                .runs
                .track(
                    minio_backup::NAME,
                    Trigger::Cli,
                    backup.run_report(set.as_deref(), false, &report),
                )
                .await;
            finish();
            outcome_of(ran)
        }
        BackupAction::Drill { set } => {
            let names = match set {
                Some(s) => match sets(&Some(s)) {
                    Ok(n) => n,
                    Err(code) => return code,
                },
                None => backup.drill_sets(),
            };
            let drill = async {
                match backup.drill_report(&names).await {
                    (true, summary) => Ok(Report::success(summary)),
                    (false, summary) => Err(InvokeError::Failed(summary)),
                }
            };
            let ran = gateway
                .ctx
                .runs
                .track(minio_backup::NAME, Trigger::Cli, drill)
                .await;
            outcome_of(ran)
        }
        BackupAction::List { set } => {
            let names = match sets(&set) {
                Ok(n) => n,
                Err(code) => return code,
            };
            let mut out = Vec::new();
            for name in names {
                match backup.good_backups(&name).await {
                    Ok(good) => out.extend(good.into_iter().rev().map(|g| {
                        json!({"set": name, "key": g.manifest.key, "started_at": g.manifest.started_at,
                               "bytes": g.manifest.size, "sha256": g.manifest.sha256})
                    })),
                    Err(e) => return failed(&e),
                }
            }
            println!("{}", serde_json::Value::Array(out));
            ExitCode::SUCCESS
        }
        BackupAction::Verify { set } => {
            let names = match sets(&set) {
                Ok(n) => n,
                Err(code) => return code,
            };
            match backup.verify(&names).await {
                Ok(bad) if bad.is_empty() => {
                    println!("{}", json!({"status": "ok", "sets": names}));
                    ExitCode::SUCCESS
                }
                Ok(bad) => {
                    let bad: Vec<_> = bad
                        .into_iter()
                        .map(|(key, problem)| json!({"key": key, "problem": problem}))
                        .collect();
                    println!("{}", json!({"status": "failure", "bad": bad}));
                    fail(
                        "backups that do not match their manifest (listed on stdout)",
                        1,
                    )
                }
                Err(e) => failed(&e),
            }
        }
        BackupAction::Restore {
            set,
            at,
            to_database,
            to_dir,
        } => {
            let at = match at.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
                None => None,
                Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
                Some(Err(e)) => return fail(&format!("--at is not an RFC 3339 time: {e}"), 2),
            };
            let to = match (to_database, to_dir) {
                (Some(db), _) => RestoreTo::Database(db),
                (None, Some(dir)) => RestoreTo::Dir(dir),
                (None, None) => return fail("--to-database or --to-dir is required", 2),
            };
            let good = match backup.pick(&set, at).await {
                Ok(g) => g,
                Err(e) => return failed(&e),
            };
            let size = good.manifest.size;
            let (check, copy) = (
                progress::bar("check", Some(size)),
                progress::bar("restore", Some(size)),
            );
            let restored = backup
                .restore(&good, &to, reporting(&check), reporting(&copy))
                .await;
            check.finish();
            copy.finish();
            match restored {
                Ok(done) => {
                    println!(
                        "{}",
                        json!({"status": "success", "restored": good.manifest.key, "summary": done})
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => failed(&e),
            }
        }
    }
}

fn reporting(bar: &indicatif::ProgressBar) -> Progress {
    let bar = bar.clone();
    Arc::new(move |bytes| bar.set_position(bytes))
}

/// A run's outcome as JSON on stdout, and its exit code.
fn outcome_of(ran: Result<Report, InvokeError>) -> ExitCode {
    match ran {
        Ok(r) => {
            println!("{}", json!({"status": "success", "summary": r.summary}));
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!(
                "{}",
                json!({"status": e.outcome(), "summary": e.to_string()})
            );
            fail(&e.to_string(), 1)
        }
    }
}
