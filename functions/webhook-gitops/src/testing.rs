//! Test fixtures of this function, for its own tests and the gateway's: the secret test
//! deliveries are signed with, the settings that configure it, and signing.

/// The webhook secret of test gateways.
pub const SECRET: &str = "test-webhook-secret";

/// The settings a test gateway needs to accept deliveries.
pub fn env() -> Vec<(String, String)> {
    vec![("GITHUB_WEBHOOK_SECRET".to_owned(), SECRET.to_owned())]
}

/// `hub.toml` text that lets `repo`'s own `.gitops` name its reload command.
pub fn allow_repo_command(repo: &str) -> String {
    format!("[webhook_gitops.repos.{repo}]\nallow_repo_command = true\n")
}

/// `X-Hub-Signature-256` of `body` under [`SECRET`].
pub fn sign(body: &[u8]) -> String {
    crate::signature::sign(SECRET.as_bytes(), body)
}
