//! The replay-key claims of one batch in one statement, meaning what they would one by one.
//!
//! A statement costs a hand-over (a round trip to PostgreSQL, a trip to the SQLite connection's
//! thread and back) that, on a busy machine, waits for the scheduler: a statement per claim
//! bounded accepted webhook deliveries at a few thousand a second. So the claims queued
//! together go in one insert, each key once, asked for by the first claim naming it; the keys
//! that insert took say which claims got all of theirs.
//!
//! One by one, a claim gets its keys when each is new or failed, and a refused claim changes
//! nothing. So after the insert: a claim that took only some of its keys gives them back
//! (marked `failed`, claimable as before); a claim refused because an earlier claim of the
//! batch held a key that was then given back is tried again on its own, in order. A claim can
//! only be held up by an earlier one, so trying again cannot disturb a later claim that
//! succeeded.

use super::StoreError;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// One claim of a batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim<'a> {
    pub(super) scope: &'static str,
    pub(super) subject: &'a str,
    /// Without duplicates.
    pub(super) keys: &'a [String],
}

/// A key to insert: scope, key, subject.
pub(super) type Row<'a> = (&'static str, &'a str, &'a str);

/// The statements a backend runs for claims, inside the batch's transaction.
pub(super) trait KeysTx {
    /// Inserts `rows` as `pending` (a conflicting key is taken only when `failed`); returns
    /// the `(scope, key)` of the rows taken.
    async fn take(
        &mut self,
        rows: &[Row<'_>],
        at: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Sets the pending `keys` of `scope` to `state`.
    async fn settle(&mut self, scope: &str, keys: &[String], state: &str)
    -> Result<(), StoreError>;
}

/// Claims `claims`, in order, as if one by one; whether each got its keys.
pub(super) async fn claim_all<T: KeysTx>(
    tx: &mut T,
    claims: &[Claim<'_>],
    at: DateTime<Utc>,
) -> Result<Vec<bool>, StoreError> {
    let (mut claimed, retry) = claim_once(tx, claims, at).await?;
    for i in retry {
        claimed[i] = claim_once(tx, &claims[i..=i], at).await?.0[0];
    }
    Ok(claimed)
}

/// One insert for `claims` and the give-backs; whether each got its keys, and the claims
/// to try again.
async fn claim_once<T: KeysTx>(
    tx: &mut T,
    claims: &[Claim<'_>],
    at: DateTime<Utc>,
) -> Result<(Vec<bool>, Vec<usize>), StoreError> {
    let plan = Plan::new(claims);
    let took: HashSet<(String, String)> = tx.take(&plan.rows, at).await?.into_iter().collect();
    let resolved = plan.resolve(claims, &took);
    for (scope, keys) in &resolved.give_back {
        tx.settle(scope, keys, "failed").await?;
    }
    Ok((resolved.claimed, resolved.retry))
}

/// Each key once, with the claim that asks for it first.
struct Plan<'a> {
    rows: Vec<Row<'a>>,
    owner: HashMap<(&'static str, &'a str), usize>,
}

/// What the keys taken mean for each claim.
#[derive(Debug, PartialEq, Eq)]
struct Resolved {
    claimed: Vec<bool>,
    /// Keys taken by claims that did not get all theirs, by scope.
    give_back: Vec<(&'static str, Vec<String>)>,
    /// Claims held up by a key an earlier claim gave back, in order.
    retry: Vec<usize>,
}

impl<'a> Plan<'a> {
    fn new(claims: &[Claim<'a>]) -> Self {
        let mut plan = Plan {
            rows: Vec::new(),
            owner: HashMap::new(),
        };
        for (i, c) in claims.iter().enumerate() {
            for key in c.keys {
                if let std::collections::hash_map::Entry::Vacant(e) =
                    plan.owner.entry((c.scope, key.as_str()))
                {
                    e.insert(i);
                    plan.rows.push((c.scope, key, c.subject));
                }
            }
        }
        plan
    }

    fn resolve(&self, claims: &[Claim<'a>], took: &HashSet<(String, String)>) -> Resolved {
        let owner = |c: &Claim<'a>, key: &str| self.owner[&(c.scope, key)];
        let taken = |c: &Claim<'a>, key: &str| took.contains(&(c.scope.to_owned(), key.to_owned()));
        let mut claimed = Vec::with_capacity(claims.len());
        let mut give_back: Vec<(&'static str, Vec<String>)> = Vec::new();
        let mut given_back: HashSet<(&'static str, &str)> = HashSet::new();
        for (i, c) in claims.iter().enumerate() {
            let all = c.keys.iter().all(|k| owner(c, k) == i && taken(c, k));
            claimed.push(all);
            if all {
                continue;
            }
            for k in c.keys.iter().filter(|k| owner(c, k) == i && taken(c, k)) {
                given_back.insert((c.scope, k));
                match give_back.iter_mut().find(|(s, _)| *s == c.scope) {
                    Some((_, keys)) => keys.push(k.clone()),
                    None => give_back.push((c.scope, vec![k.clone()])),
                }
            }
        }
        let retry = claims
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                !claimed[*i]
                    && c.keys
                        .iter()
                        .any(|k| owner(c, k) != *i && given_back.contains(&(c.scope, k.as_str())))
            })
            .map(|(i, _)| i)
            .collect();
        Resolved {
            claimed,
            give_back,
            retry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| (*k).to_owned()).collect()
    }

    fn took(list: &[&str]) -> HashSet<(String, String)> {
        list.iter()
            .map(|k| ("s".to_owned(), (*k).to_owned()))
            .collect()
    }

    #[test]
    fn claims_resolve_as_they_would_one_by_one() {
        let (a, b, c, d) = (
            keys(&["d1", "b1"]),
            keys(&["d2", "b1"]),
            keys(&["d2", "b2"]),
            keys(&["d3"]),
        );
        let claims: Vec<Claim<'_>> = [&a, &b, &c, &d]
            .into_iter()
            .map(|k| Claim {
                scope: "s",
                subject: "repo",
                keys: k,
            })
            .collect();
        let plan = Plan::new(&claims);
        // Each key once, for the first claim naming it.
        let rows: Vec<&str> = plan.rows.iter().map(|r| r.1).collect();
        assert_eq!(rows, ["d1", "b1", "d2", "b2", "d3"]);

        struct Case {
            why: &'static str,
            took: &'static [&'static str],
            want: Resolved,
        }
        let cases = [
            Case {
                why: "all new: the first claim of b1 wins, the second is a replay",
                took: &["d1", "b1", "d2", "b2", "d3"],
                want: Resolved {
                    claimed: vec![true, false, false, true],
                    // The second claim took d2 but not b1: it gives d2 back. The third, held
                    // up by d2, gives its b2 back too and goes again on its own.
                    give_back: vec![("s", keys(&["d2", "b2"]))],
                    retry: vec![2],
                },
            },
            Case {
                why: "b1 pending from an earlier batch: the first claim gives d1 back",
                took: &["d1", "d2", "b2", "d3"],
                want: Resolved {
                    claimed: vec![false, false, false, true],
                    give_back: vec![("s", keys(&["d1", "d2", "b2"]))],
                    retry: vec![2],
                },
            },
            Case {
                why: "nothing new",
                took: &[],
                want: Resolved {
                    claimed: vec![false; 4],
                    give_back: vec![],
                    retry: vec![],
                },
            },
        ];
        for case in cases {
            assert_eq!(
                plan.resolve(&claims, &took(case.took)),
                case.want,
                "{}",
                case.why
            );
        }
    }
}
