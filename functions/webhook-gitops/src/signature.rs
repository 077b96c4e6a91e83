//! GitHub webhook signatures: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.
//! Checked before the body is parsed at all, in constant time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("malformed X-Hub-Signature-256 header (expected sha256=<64 hex digits>)")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// The digest a `X-Hub-Signature-256` value carries, if it is well formed. Checked on the
/// headers alone, before the body is read.
pub fn digest(header: Option<&str>) -> Result<Vec<u8>, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_digest = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    Ok(expected)
}

/// Verifies `header` (the raw `X-Hub-Signature-256` value) for `body` under `secret`.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let expected = digest(header)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value GitHub would send for `body` (used by tests and the benchmark client).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's documented example ("Validating webhook deliveries").
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_BODY: &str = "Hello, World!";
    const DOC_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    /// name, secret, body, header, expected result
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Result<(), SignatureError>,
    );

    #[test]
    fn table() {
        let upper = DOC_SIG.to_uppercase().replacen("SHA256=", "sha256=", 1);
        let cases: &[Case] = &[
            (
                "github doc example",
                DOC_SECRET,
                DOC_BODY,
                Some(DOC_SIG),
                Ok(()),
            ),
            (
                "uppercase hex accepted",
                DOC_SECRET,
                DOC_BODY,
                Some(&upper),
                Ok(()),
            ),
            (
                "surrounding spaces ignored",
                DOC_SECRET,
                DOC_BODY,
                Some(" sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17 "),
                Ok(()),
            ),
            (
                "missing header",
                DOC_SECRET,
                DOC_BODY,
                None,
                Err(SignatureError::Missing),
            ),
            (
                "empty header",
                DOC_SECRET,
                DOC_BODY,
                Some(""),
                Err(SignatureError::Malformed),
            ),
            (
                "sha1 prefix",
                DOC_SECRET,
                DOC_BODY,
                Some("sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
                Err(SignatureError::Malformed),
            ),
            (
                "no prefix",
                DOC_SECRET,
                DOC_BODY,
                Some("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
                Err(SignatureError::Malformed),
            ),
            (
                "not hex",
                DOC_SECRET,
                DOC_BODY,
                Some("sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
                Err(SignatureError::Malformed),
            ),
            (
                "truncated digest",
                DOC_SECRET,
                DOC_BODY,
                Some("sha256=757107ea0eb2509fc211221cce984b8a"),
                Err(SignatureError::Malformed),
            ),
            (
                "wrong secret",
                "another secret",
                DOC_BODY,
                Some(DOC_SIG),
                Err(SignatureError::Mismatch),
            ),
            (
                "body changed by one byte",
                DOC_SECRET,
                "Hello, World?",
                Some(DOC_SIG),
                Err(SignatureError::Mismatch),
            ),
            (
                "trailing newline in body",
                DOC_SECRET,
                "Hello, World!\n",
                Some(DOC_SIG),
                Err(SignatureError::Mismatch),
            ),
            (
                "one digit flipped",
                DOC_SECRET,
                DOC_BODY,
                Some("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18"),
                Err(SignatureError::Mismatch),
            ),
        ];
        for (name, secret, body, header, want) in cases {
            assert_eq!(
                verify(secret.as_bytes(), body.as_bytes(), *header),
                *want,
                "case: {name}"
            );
        }
    }

    #[test]
    fn sign_matches_github_doc_example() {
        assert_eq!(sign(DOC_SECRET.as_bytes(), DOC_BODY.as_bytes()), DOC_SIG);
    }
}
