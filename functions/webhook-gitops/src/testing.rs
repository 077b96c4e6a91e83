//! Test fixtures of this function, for its own tests and the gateway's: the secret test
//! deliveries are signed with, the settings that configure it, and signing.

/// The webhook secret of test gateways.
pub const SECRET: &str = "test-webhook-secret";

/// The settings a test gateway needs to accept deliveries.
pub fn env() -> Vec<(String, String)> {
    vec![("GITHUB_WEBHOOK_SECRET".to_owned(), SECRET.to_owned())]
}

/// `X-Hub-Signature-256` of `body` under [`SECRET`].
pub fn sign(body: &[u8]) -> String {
    crate::signature::sign(SECRET.as_bytes(), body)
}
