//! Test fixtures of this function, for its own tests, the gateway's and the collector's.

/// The collector token of test gateways.
pub const TOKEN: &str = "test-collector-token";

/// The settings a test gateway needs to accept pushes.
pub fn env() -> Vec<(String, String)> {
    vec![("HUB_COLLECTOR_TOKEN".to_owned(), TOKEN.to_owned())]
}
