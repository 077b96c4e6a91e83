use sqlx::Connection;

/// A PostgreSQL database of its own for one test, dropped afterwards.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        Self::create_with("").await
    }

    /// A database whose default collation is ICU's `locale` (e.g. `en-US`), as on a host whose
    /// PostgreSQL was initialised with a language locale, unlike the test server's C.UTF-8.
    pub async fn create_with_icu_locale(locale: &str) -> Self {
        assert!(
            locale
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "an ICU locale name such as en-US"
        );
        Self::create_with(&format!(
            " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{locale}'"
        ))
        .await
    }

    /// `options` follow `CREATE DATABASE "name"`.
    async fn create_with(options: &str) -> Self {
        // `TEST_PG_ADMIN_URL`, default the machine's trust-auth PostgreSQL on 127.0.0.1:5432.
        let admin_url = crate::config::settings().pg_admin_url.clone();
        let name = format!("hub_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL must run at {admin_url} for the tests (make test starts it): {e}"
                )
            });
        sqlx::query(&format!("CREATE DATABASE \"{name}\"{options}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        Self {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        }
    }

    /// Drops the database now (closing its connections), e.g. to take it away under a running
    /// process.
    pub async fn drop_now(&self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to drop the test database");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .expect("drop test database");
    }

    /// Makes PostgreSQL refuse the database's connections (cutting the open ones) or take them
    /// again: the store goes away under a running process and comes back, data intact.
    pub async fn allow_connections(&self, allow: bool) {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to alter the test database");
        let mut sql = vec![format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS {allow}",
            self.name
        )];
        if !allow {
            sql.push(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                self.name
            ));
        }
        for sql in sql {
            sqlx::query(&sql)
                .execute(&mut conn)
                .await
                .expect("alter the test database");
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside any runtime guarantee; use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut c)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

/// Which store a test runs on: the embedded SQLite store, or PostgreSQL in a database of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// For PostgreSQL a fresh database (keep the guard for the test's length), for SQLite none.
    pub async fn database(self) -> Option<TestDb> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDb::create().await),
        }
    }
}
