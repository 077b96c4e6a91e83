//! Credentials checked on headers alone, so an unauthenticated request is refused before its
//! body is read (see [`crate::routes::Guard`]): bearer tokens for functions, bearer or HTTP
//! Basic for the gateway's operator routes.

use crate::error::{PublicError, respond};
use crate::routes::Guard;
use axum::http::{HeaderMap, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The function has no credential to compare with: it refuses everything.
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    #[error("missing bearer token")]
    MissingToken,
    /// Neither a bearer token nor HTTP Basic credentials (see [`check_bearer_or_basic`]).
    #[error("credentials required")]
    MissingCredentials,
    #[error("wrong token")]
    WrongToken,
}

impl PublicError for AuthError {
    fn status(&self) -> StatusCode {
        match self {
            AuthError::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::MissingToken | AuthError::MissingCredentials | AuthError::WrongToken => {
                StatusCode::UNAUTHORIZED
            }
        }
    }
}

/// Checks `Authorization: Bearer <token>` in constant time.
pub fn check_bearer(
    expected: Option<&SecretString>,
    what: &'static str,
    headers: &HeaderMap,
) -> Result<(), AuthError> {
    let expected = expected.ok_or(AuthError::NotConfigured(what))?;
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` is as good as `Bearer`.
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or(AuthError::MissingToken)?;
    if bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::WrongToken)
    }
}

/// Checks `Authorization: Bearer <token>`, or HTTP Basic with any user name and `expected` as
/// the password — what a browser's login prompt sends, so a person can open a page the token
/// protects. Compared in constant time; the credentials are never logged.
pub fn check_bearer_or_basic(
    expected: &SecretString,
    headers: &HeaderMap,
) -> Result<(), AuthError> {
    use base64::Engine;
    let (scheme, value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .ok_or(AuthError::MissingCredentials)?;
    let given: Vec<u8> = if scheme.eq_ignore_ascii_case("bearer") {
        value.as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| AuthError::WrongToken)?;
        // RFC 7617: user-id ":" password; the user id cannot hold a colon, the password can.
        match decoded.iter().position(|&b| b == b':') {
            Some(colon) => decoded[colon + 1..].to_vec(),
            None => return Err(AuthError::WrongToken),
        }
    } else {
        return Err(AuthError::MissingCredentials);
    };
    if bool::from(given.as_slice().ct_eq(expected.expose_secret().as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::WrongToken)
    }
}

/// A guard admitting requests that carry `token` as a bearer token; `what` names the missing
/// credential in the 503 a function without one answers (e.g. "collector token").
pub fn bearer_guard(token: Option<SecretString>, what: &'static str) -> Guard {
    Arc::new(move |headers: &HeaderMap| {
        check_bearer(token.as_ref(), what, headers)
            .err()
            .map(|e| respond(&e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(a));
        }
        h
    }

    #[test]
    fn bearer_tokens_are_compared_exactly() {
        let token = SecretString::from("s3cret");
        let check = |auth| check_bearer(Some(&token), "demo token", &headers(auth));
        assert!(check(Some("Bearer s3cret")).is_ok());
        assert!(
            check(Some("bearer s3cret")).is_ok(),
            "scheme is case-insensitive"
        );
        assert!(
            check(Some("BEARER s3cret")).is_ok(),
            "scheme is case-insensitive"
        );
        for (auth, want) in [
            (None, "missing bearer token"),
            (Some("Basic s3cret"), "missing bearer token"),
            (Some("Bearer s3cre"), "wrong token"),
            (Some("Bearer S3CRET"), "wrong token"),
            (Some("Bearer s3cret "), "wrong token"),
            (Some("Bearer "), "wrong token"),
        ] {
            let err = check(auth).expect_err("refused");
            assert_eq!(err.to_string(), want, "{auth:?}");
            assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        }
        let err = check_bearer(None, "demo token", &headers(Some("Bearer s3cret")))
            .expect_err("no token configured");
        assert_eq!(err.to_string(), "demo token is not configured");
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn bearer_or_basic_with_any_user() {
        use base64::Engine;
        let token = SecretString::from("s3:cret");
        let basic = |userpass: &str| {
            let v = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(userpass)
            );
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&v).expect("ascii"),
            );
            check_bearer_or_basic(&token, &h)
        };
        assert!(check_bearer_or_basic(&token, &headers(Some("Bearer s3:cret"))).is_ok());
        assert!(basic("operator:s3:cret").is_ok());
        assert!(basic(":s3:cret").is_ok(), "an empty user is a user");
        assert!(basic("anyone:s3:cret").is_ok());
        for (refused, want) in [
            (basic("operator:s3:cre"), "wrong token"),
            (basic("s3:cret"), "wrong token"),
            (basic("operator"), "wrong token"),
            (
                check_bearer_or_basic(&token, &headers(Some("Basic not*base64"))),
                "wrong token",
            ),
            (
                check_bearer_or_basic(&token, &headers(Some("Bearer s3:cre"))),
                "wrong token",
            ),
            (
                check_bearer_or_basic(&token, &headers(None)),
                "credentials required",
            ),
            (
                check_bearer_or_basic(&token, &headers(Some("Digest s3:cret"))),
                "credentials required",
            ),
        ] {
            let err = refused.expect_err("refused");
            assert_eq!(err.to_string(), want);
            assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        }
    }
}
