//! Per-function tables, created on first use.

use super::{Store, StoreError};

/// Creates a function's own tables.
pub type CreateTables =
    for<'a> fn(&'a Store) -> futures::future::BoxFuture<'a, Result<(), StoreError>>;

/// A function's view of the store: its tables are created on first use, once, and a failure
/// is retried on the next use (a database that was down at start must not stick).
#[derive(Debug)]
pub struct Tables {
    store: Store,
    /// Named in readiness failures, e.g. "system_metrics".
    what: &'static str,
    create: CreateTables,
    created: tokio::sync::OnceCell<()>,
}

impl Tables {
    pub fn new(store: Store, what: &'static str, create: CreateTables) -> Self {
        Self {
            store,
            what,
            create,
            created: tokio::sync::OnceCell::new(),
        }
    }

    /// The store, once the tables exist.
    pub async fn store(&self) -> Result<&Store, StoreError> {
        self.created
            .get_or_try_init(|| (self.create)(&self.store))
            .await?;
        Ok(&self.store)
    }

    /// For [`crate::Function::ready`]: the tables can be created (or exist).
    pub async fn ready(&self) -> Result<(), String> {
        self.store()
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot prepare {}: {e}", self.what))
    }
}
