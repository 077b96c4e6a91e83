//! Which backups a set keeps, following restic's `forget` policy
//! (<https://restic.readthedocs.io/en/stable/060_forget.html>), so operators can reason with
//! documentation they already know.
//!
//! Backups are ordered newest first. `keep_last N` keeps the N newest; `keep_daily`,
//! `keep_weekly` and `keep_monthly N` keep the newest backup of each of the N most recent UTC
//! days, ISO weeks or months *that have a backup* (gaps do not use up slots). Each option
//! counts over the whole list on its own and a backup kept by any of them stays. An empty
//! policy deletes nothing (restic refuses to run then), and the newest backup is never deleted.

use chrono::{DateTime, Datelike, Utc};

/// How many backups to keep; options are OR-ed (a backup kept by any option stays).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

impl Policy {
    /// Whether any option is set; an empty policy keeps everything (restic refuses to forget
    /// with no policy; we never delete then).
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
    }
}

/// Which of `backups` (their times; any order; only GOOD backups are passed in) to keep and
/// which to delete, per the policy.
/// Returns the indexes into `backups` to delete, ascending. Never deletes the newest backup.
/// Empty policy → deletes nothing.
pub fn to_delete(policy: &Policy, backups: &[DateTime<Utc>]) -> Vec<usize> {
    if policy.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..backups.len()).collect();
    // Stable, so identical timestamps keep their input order and the outcome is deterministic.
    order.sort_by(|&a, &b| backups[b].cmp(&backups[a]));
    let mut keep = vec![false; backups.len()];
    if let Some(&newest) = order.first() {
        // Every non-empty option keeps the newest anyway; this guards against a future option
        // that would not, since losing the latest backup is the one unrecoverable mistake.
        keep[newest] = true;
    }
    for &i in order.iter().take(policy.keep_last as usize) {
        keep[i] = true;
    }
    keep_per_bucket(&order, backups, policy.keep_daily, &mut keep, |t| {
        (t.year(), t.ordinal())
    });
    keep_per_bucket(&order, backups, policy.keep_weekly, &mut keep, |t| {
        let week = t.iso_week();
        (week.year(), week.week())
    });
    keep_per_bucket(&order, backups, policy.keep_monthly, &mut keep, |t| {
        (t.year(), t.month())
    });
    (0..backups.len()).filter(|&i| !keep[i]).collect()
}

/// Keeps the first (newest) backup of each of the `n` most recent buckets. `order` is newest
/// first, so a bucket's backups are contiguous and comparing with the previous key suffices,
/// as restic does.
fn keep_per_bucket(
    order: &[usize],
    backups: &[DateTime<Utc>],
    n: u32,
    keep: &mut [bool],
    bucket: impl Fn(&DateTime<Utc>) -> (i32, u32),
) {
    let mut left = n;
    let mut last = None;
    for &i in order {
        if left == 0 {
            break;
        }
        let key = bucket(&backups[i]);
        if last != Some(key) {
            last = Some(key);
            keep[i] = true;
            left -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    /// Space-separated `YYYY-MM-DDTHH` UTC times, so expected sets read as plain lists.
    fn ts(list: &str) -> Vec<DateTime<Utc>> {
        list.split_whitespace()
            .map(|s| format!("{s}:00:00Z").parse().expect("valid time"))
            .collect()
    }

    fn at(s: &str) -> DateTime<Utc> {
        ts(s)[0]
    }

    /// One backup a day at `first`'s time of day, through `last`, oldest first.
    fn dailies(first: &str, last: &str) -> Vec<DateTime<Utc>> {
        let first = at(first);
        let days = (at(last) - first).num_days();
        (0..=days).map(|d| first + Duration::days(d)).collect()
    }

    /// The timestamps kept, newest first, checking the deletion list's contract on the way.
    fn kept(policy: Policy, backups: &[DateTime<Utc>]) -> Vec<DateTime<Utc>> {
        let del = to_delete(&policy, backups);
        assert!(del.windows(2).all(|w| w[0] < w[1]), "ascending: {del:?}");
        assert!(del.iter().all(|&i| i < backups.len()));
        let mut k: Vec<_> = (0..backups.len())
            .filter(|i| !del.contains(i))
            .map(|i| backups[i])
            .collect();
        k.sort_by(|a, b| b.cmp(a));
        k
    }

    const fn p(keep_last: u32, keep_daily: u32, keep_weekly: u32, keep_monthly: u32) -> Policy {
        Policy {
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
        }
    }

    #[test]
    fn keep_last_deletes_the_oldest() {
        let backups = dailies("2026-03-01T01", "2026-03-10T01");
        let want: Vec<usize> = (0..7).collect();
        assert_eq!(to_delete(&p(3, 0, 0, 0), &backups), want);
    }

    #[test]
    fn keep_daily_keeps_each_days_newest_and_drops_same_day_extras() {
        let mut backups = dailies("2026-03-01T01", "2026-03-31T01");
        backups.extend(ts(
            "2026-03-31T13 2026-03-29T08 2026-03-29T20 2026-03-20T05",
        ));
        let want = ts("2026-03-31T13 2026-03-30T01 2026-03-29T20 2026-03-28T01 \
                       2026-03-27T01 2026-03-26T01 2026-03-25T01");
        assert_eq!(kept(p(0, 7, 0, 0), &backups), want);
    }

    #[test]
    fn days_without_backups_use_no_daily_slot() {
        let mut backups = dailies("2026-03-01T01", "2026-03-05T01");
        backups.extend(ts("2026-03-20T01 2026-03-22T01"));
        let want = ts("2026-03-22T01 2026-03-20T01 2026-03-05T01 2026-03-04T01");
        assert_eq!(kept(p(0, 4, 0, 0), &backups), want);
    }

    #[test]
    fn keep_weekly_uses_iso_weeks_across_the_year_boundary() {
        // 2026 starts on a Thursday, so it has a week 53 that ends in 2027.
        let w53 = at("2027-01-03T01").iso_week();
        assert_eq!((w53.year(), w53.week()), (2026, 53));
        assert_eq!(at("2026-12-28T01").iso_week(), w53);
        let backups = dailies("2026-11-15T01", "2027-01-13T01");
        // 2027-W02 (to Wed 13th), W01 (ends Sun 10th), 2026-W53 (ends Sun 3rd), W52.
        let want = ts("2027-01-13T01 2027-01-10T01 2027-01-03T01 2026-12-27T01");
        assert_eq!(kept(p(0, 0, 4, 0), &backups), want);
    }

    #[test]
    fn keep_monthly_skips_months_without_backups() {
        let backups = ts("2026-01-05T01 2026-01-30T01 2026-02-10T01 2026-02-27T23 \
                          2026-04-01T01 2026-04-15T01 2026-05-02T01 2026-05-03T01");
        let want = ts("2026-05-03T01 2026-04-15T01 2026-02-27T23");
        assert_eq!(kept(p(0, 0, 0, 3), &backups), want);
    }

    #[test]
    fn combined_options_keep_exactly_what_restic_would() {
        // 90 nights of 2026-Q1; the 29 March run failed (so is not passed in) and 31 March
        // has a manual run at 13:00.
        let mut backups = dailies("2026-01-01T01", "2026-03-31T01");
        backups.retain(|&t| t != at("2026-03-29T01"));
        backups.push(at("2026-03-31T13"));
        // last 2: 31st 13:00 and 01:00. daily 3: 31st 13:00, 30th, 28th (29th missing).
        // weekly 2: week of Mon 30 Mar → 31st 13:00; 23–29 Mar → 28th.
        // monthly 2: March → 31st 13:00; February → 28 Feb.
        let want = ts("2026-03-31T13 2026-03-31T01 2026-03-30T01 2026-03-28T01 2026-02-28T01");
        assert_eq!(kept(p(2, 3, 2, 2), &backups), want);
    }

    #[test]
    fn the_newest_backup_is_never_deleted() {
        let mut many = dailies("2026-01-01T01", "2026-02-15T01");
        many.push(at("2026-02-15T22"));
        let policies = [p(1, 0, 0, 0), p(0, 1, 0, 0), p(0, 0, 1, 0), p(0, 0, 0, 1)];
        for policy in policies.into_iter().chain([p(5, 5, 5, 5)]) {
            let only = [at("2026-06-01T01")];
            assert!(to_delete(&policy, &only).is_empty(), "{policy:?}");
            assert_eq!(kept(policy, &many)[0], at("2026-02-15T22"), "{policy:?}");
        }
        // keep_daily alone keeps the newest because it is its day's newest.
        assert!(!to_delete(&p(0, 2, 0, 0), &many).contains(&(many.len() - 1)));
    }

    #[test]
    fn identical_timestamps_are_distinct_and_the_first_wins() {
        let backups = ts("2026-02-01T01 2026-03-01T01 2026-03-01T01");
        let cases: [(Policy, &[usize]); 3] = [
            (p(1, 0, 0, 0), &[0, 2]),
            (p(0, 1, 0, 0), &[0, 2]),
            (p(2, 0, 0, 0), &[0]),
        ];
        for (policy, want) in cases {
            assert_eq!(to_delete(&policy, &backups), want, "{policy:?}");
        }
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut sorted = dailies("2026-01-01T01", "2026-03-31T01");
        sorted.extend(ts("2026-03-31T13 2026-03-15T09"));
        let reversed: Vec<_> = sorted.iter().rev().copied().collect();
        let mut scrambled = sorted.clone();
        // A sort by a hash-like key is a permutation by construction, unlike index arithmetic.
        scrambled.sort_by_key(|t| (t.timestamp() / 3600 * 7919) % 1009);
        assert_ne!(scrambled, sorted);
        for policy in [p(2, 3, 2, 2), p(0, 10, 0, 0), p(4, 0, 3, 2)] {
            let want = kept(policy, &sorted);
            assert_eq!(kept(policy, &reversed), want, "{policy:?}");
            assert_eq!(kept(policy, &scrambled), want, "{policy:?}");
        }
    }

    #[test]
    fn empty_policy_deletes_nothing() {
        let backups = dailies("2026-01-01T01", "2026-03-31T01");
        assert!(Policy::default().is_empty());
        assert!(!p(0, 0, 0, 1).is_empty());
        assert!(to_delete(&Policy::default(), &backups).is_empty());
        assert!(to_delete(&p(3, 0, 0, 0), &[]).is_empty());
    }
}
