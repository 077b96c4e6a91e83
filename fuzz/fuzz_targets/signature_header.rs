//! `X-Hub-Signature-256` parsing and checking on arbitrary input.
//!
//! Checks: `digest` and `verify` never panic; a digest that is accepted is 32 bytes; the
//! header `sign` makes for a body always verifies, and verifies for no other body.
//! Input: byte 0 = secret length, byte 1 = header length, then the secret, the header (any
//! bytes, read as UTF-8 lossily) and the body (the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_gitops::signature::{SignatureError, digest, sign, verify};

fuzz_target!(|data: &[u8]| {
    if let Ok(whole) = std::str::from_utf8(data)
        && let Ok(d) = digest(Some(whole))
    {
        assert_eq!(d.len(), 32);
    }
    let [secret_len, header_len, rest @ ..] = data else {
        return;
    };
    let (secret, rest) = rest.split_at((*secret_len as usize).min(rest.len()));
    let (header, body) = rest.split_at((*header_len as usize).min(rest.len()));
    let header = String::from_utf8_lossy(header);

    if let Ok(d) = digest(Some(&header)) {
        assert_eq!(d.len(), 32);
    }
    let checked = verify(secret, body, Some(&header));
    if digest(Some(&header)).is_err() {
        assert_eq!(checked, Err(SignatureError::Malformed));
    }
    assert_eq!(verify(secret, body, None), Err(SignatureError::Missing));

    let good = sign(secret, body);
    assert_eq!(verify(secret, body, Some(&good)), Ok(()));
    // The same signature over the body with one more byte must not verify.
    let mut longer = body.to_vec();
    longer.push(0);
    assert_eq!(
        verify(secret, &longer, Some(&good)),
        Err(SignatureError::Mismatch)
    );
});
