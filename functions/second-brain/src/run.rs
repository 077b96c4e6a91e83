//! One sync run: list the journal, keep the new dated issues, store their entries oldest first.

use crate::github::Issue;
use crate::{BrainError, NAME, SecondBrain, parse, store};
use chrono::{NaiveDate, Utc};
use hub_runtime::error::PublicError;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// Entries added to `second_brain`.
    pub processed: u64,
    /// New dated issues read (their entries stored, or already there).
    pub issues: u64,
    /// Issues whose title is not a date.
    pub skipped: u64,
    /// Entries parsed that were stored already (the same bullet in an earlier issue).
    pub duplicates: u64,
}

/// A finished run: its counts, and the error that stopped it, if any.
#[derive(Debug)]
pub struct SyncReport {
    pub synced: Synced,
    pub duration: Duration,
    pub error: Option<BrainError>,
}

impl SyncReport {
    pub(crate) fn summary(&self) -> String {
        let s = &self.synced;
        let mut text = format!("{} entries added from {} new issues", s.processed, s.issues);
        if s.duplicates > 0 {
            text.push_str(&format!(", {} already stored", s.duplicates));
        }
        if s.skipped > 0 {
            text.push_str(&format!(
                ", {} issues skipped (title not a date)",
                s.skipped
            ));
        }
        if let Some(e) = &self.error {
            text.push_str(&format!("; stopped: {e}"));
        }
        text
    }

    pub(crate) fn body(&self) -> Value {
        let s = &self.synced;
        let mut body = json!({
            "service": NAME,
            "status": if self.error.is_none() { "success" } else { "error" },
            "processed_count": s.processed,
            "issues": s.issues,
            "skipped": s.skipped,
            "duplicates": s.duplicates,
            "duration_ms": u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(e) = &self.error {
            body["error"] = e.public_message().into();
            if let Some(id) = hub_runtime::error::current_request_id() {
                body["request_id"] = id.into();
            }
        }
        body
    }
}

/// The issues of `listed` dated after `after`, oldest first, with their dates; the count of
/// titles that are not dates.
pub fn new_dated(listed: Vec<Issue>, after: Option<NaiveDate>) -> (Vec<(NaiveDate, Issue)>, u64) {
    let mut skipped = 0;
    let mut dated: Vec<(NaiveDate, Issue)> = listed
        .into_iter()
        .filter_map(
            |i| match NaiveDate::parse_from_str(i.title.trim(), "%Y-%m-%d") {
                Ok(d) => Some((d, i)),
                Err(_) => {
                    // The title itself is the owner's text: only the number is logged.
                    tracing::warn!(
                        issue = i.number,
                        "journal issue title is not a YYYY-MM-DD date; skipped"
                    );
                    skipped += 1;
                    None
                }
            },
        )
        .filter(|(d, _)| after.is_none_or(|a| *d > a))
        .collect();
    dated.sort_by_key(|(d, i)| (*d, i.number));
    (dated, skipped)
}

impl SecondBrain {
    /// One run, recorded in `second_brain_sync_history`. Never panics on a dependency failing:
    /// the error is in the report.
    pub async fn run_once(&self) -> SyncReport {
        let started = Utc::now();
        let clock = Instant::now();
        let mut synced = Synced::default();
        let result = self.sync(&mut synced).await;
        if !matches!(result, Err(BrainError::NotConfigured)) {
            if let Ok(st) = self.store().await {
                let (status, error) = match &result {
                    Ok(()) => ("success", None),
                    Err(BrainError::Interrupted) => ("interrupted", None),
                    Err(e) => ("failure", Some(e.to_string())),
                };
                if let Err(e) =
                    store::history(st, started, status, synced.processed, error.as_deref()).await
                {
                    tracing::warn!(error = %e, "cannot write the second_brain_sync_history row");
                }
            }
        }
        let report = SyncReport {
            synced,
            duration: clock.elapsed(),
            error: result.err(),
        };
        match &report.error {
            None => tracing::info!(summary = %report.summary(), "journal sync finished"),
            Some(e) => {
                tracing::error!(error = %e, summary = %report.summary(), "journal sync failed")
            }
        }
        report
    }

    async fn sync(&self, synced: &mut Synced) -> Result<(), BrainError> {
        let repo = self
            .inner
            .cfg
            .repo
            .as_deref()
            .ok_or(BrainError::NotConfigured)?;
        let st = self.store().await?;
        let after = store::latest_date(st, repo).await?;
        let listed = tokio::select! {
            biased;
            () = self.inner.shutdown.cancelled() => return Err(BrainError::Interrupted),
            listed = self.inner.github.journal_issues(repo) => listed?,
        };
        let (dated, skipped) = new_dated(listed, after);
        synced.skipped = skipped;
        for (date, issue) in dated {
            // Between issues: what is stored stays, the next run starts after it.
            if self.inner.shutdown.is_cancelled() {
                return Err(BrainError::Interrupted);
            }
            let entries = parse::entries(date, issue.body.as_deref().unwrap_or(""));
            let added = store::insert(st, repo, &entries).await?;
            synced.issues += 1;
            synced.processed += added;
            synced.duplicates += entries.len() as u64 - added;
        }
        Ok(())
    }
}
