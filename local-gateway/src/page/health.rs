//! The public health summary: for each function, how its last run ended and its success rate
//! over 30 days. Only names, outcomes, times and counts leave the store: run summaries carry
//! paths, repository names and error text, and the page is public.

use chrono::{DateTime, Duration, Utc};
use hub_runtime::store::{OutcomeCount, RunQuery, StoreError};
use hub_runtime::{Outcome, Runs};

/// The window the success rate covers.
pub const WINDOW_DAYS: i64 = 30;

/// One function's line in the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionHealth {
    pub name: String,
    /// The newest run's start and outcome, if it ran within the window.
    pub last: Option<(DateTime<Utc>, String)>,
    /// Runs that count towards the rate: succeeded, failed or were interrupted. Rejected input
    /// (a 4xx) and skipped ticks say nothing about the function's health.
    pub counted: i64,
    pub succeeded: i64,
}

impl FunctionHealth {
    /// Percentage of counted runs that succeeded; `None` without any.
    pub fn success_rate(&self) -> Option<f64> {
        (self.counted > 0).then(|| self.succeeded as f64 * 100.0 / self.counted as f64)
    }
}

fn counts_towards_rate(outcome: &str) -> bool {
    [Outcome::Success, Outcome::Failure, Outcome::Interrupted]
        .iter()
        .any(|o| o.as_str() == outcome)
}

/// The summary for `functions`, in that order, as of `now`.
pub async fn summary(
    runs: &Runs,
    functions: &[&str],
    now: DateTime<Utc>,
) -> Result<Vec<FunctionHealth>, StoreError> {
    let since = now - Duration::days(WINDOW_DAYS);
    let counts = runs.outcome_counts(since).await?;
    let mut out = Vec::with_capacity(functions.len());
    for &name in functions {
        let newest = runs
            .list(&RunQuery {
                function: Some(name.to_owned()),
                since: Some(since),
                limit: 1,
                ..Default::default()
            })
            .await?;
        out.push(tally(
            name,
            &counts,
            newest.first().map(|r| (r.started_at, r.outcome.clone())),
        ));
    }
    Ok(out)
}

fn tally(
    name: &str,
    counts: &[OutcomeCount],
    last: Option<(DateTime<Utc>, String)>,
) -> FunctionHealth {
    let mine = || counts.iter().filter(move |c| c.function == name);
    FunctionHealth {
        name: name.to_owned(),
        last,
        counted: mine()
            .filter(|c| counts_towards_rate(&c.outcome))
            .map(|c| c.runs)
            .sum(),
        succeeded: mine()
            .filter(|c| c.outcome == Outcome::Success.as_str())
            .map(|c| c.runs)
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(function: &str, outcome: &str, runs: i64) -> OutcomeCount {
        OutcomeCount {
            function: function.into(),
            outcome: outcome.into(),
            runs,
        }
    }

    #[test]
    fn rejected_and_skipped_runs_do_not_count_against_a_function() {
        let counts = [
            count("a", "success", 8),
            count("a", "failure", 1),
            count("a", "interrupted", 1),
            count("a", "rejected", 50),
            count("a", "skipped", 7),
            count("b", "failure", 3),
        ];
        let a = tally("a", &counts, None);
        assert_eq!((a.counted, a.succeeded), (10, 8));
        assert_eq!(a.success_rate(), Some(80.0));
        let b = tally("b", &counts, None);
        assert_eq!(b.success_rate(), Some(0.0));
        let idle = tally("c", &counts, None);
        assert_eq!(idle.success_rate(), None, "no runs: no rate, not 0 %");
    }
}
