//! Known secret values never reach a log line or a run summary: every secret the config loads
//! ([`crate::Source::secret`]) is remembered here, and log lines (see [`crate::logs`]) and run
//! summaries pass through [`redact`], which replaces each occurrence with `***`.
//!
//! This is the last line of defence — for text the hub does not control, such as a reload
//! hook's stderr or a file a repository pushed — not a licence to format secrets.

use std::borrow::Cow;
use std::sync::RwLock;

/// Values shorter than this are not redacted: replacing every "ab" in every log line would
/// garble the logs, and such a secret is no secret.
pub const MIN_SECRET_LEN: usize = 6;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers `secret` for [`redact`].
pub fn remember(secret: &str) {
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut known = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    if !known.iter().any(|k| k == secret) {
        known.push(secret.to_owned());
    }
}

/// `text` with every remembered secret replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let known = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), "***"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_secrets_are_replaced_and_short_ones_ignored() {
        remember("hunter2-is-long-enough");
        remember("abc");
        assert_eq!(
            redact("GITHUB_WEBHOOK_SECRET=hunter2-is-long-enough\0PATH=/bin"),
            "GITHUB_WEBHOOK_SECRET=***\0PATH=/bin"
        );
        assert_eq!(redact("abc stays"), "abc stays");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}
