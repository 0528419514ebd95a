//! Bearer-token authentication of every admin request and the actor named
//! in the audit log.
//!
//! The presented token is hashed (SHA-256) and compared with the hash of the
//! configured one in constant time, so neither its content nor its length
//! leaks through timing. The token never appears in logs or responses.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AdminState;
use crate::ApiError;

/// Request header naming who acts, for the audit log.
pub const ACTOR_HEADER: &str = "sluice-actor";
/// The actor when the request names none.
pub const DEFAULT_ACTOR: &str = "admin";
/// Longest actor kept, in characters.
pub const MAX_ACTOR_LEN: usize = 64;

/// Paths served without the token when health routes share the listener.
const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// State of the authentication middleware.
#[derive(Clone)]
pub(crate) struct AuthState {
    pub admin: AdminState,
    /// Whether [`PUBLIC_PATHS`] are exempt (health routes on this router).
    pub public_health: bool,
}

/// Middleware: `401` (with `WWW-Authenticate: Bearer`) unless the request
/// carries the admin token. Runs before routing, so unknown paths are
/// covered too.
pub(crate) async fn require_token(
    State(auth): State<AuthState>,
    req: Request,
    next: Next,
) -> Response {
    if auth.public_health && PUBLIC_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    if token_matches(req.headers(), &auth.admin.inner.token_hash) {
        next.run(req).await
    } else {
        tracing::debug!(path = %req.uri().path(), "admin request without a valid token");
        ApiError::Unauthorized.into_response()
    }
}

/// Whether the one `Authorization: Bearer <token>` header holds the token
/// whose SHA-256 is `expected`.
fn token_matches(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Some(token) = bearer(value.as_bytes()) else {
        return false;
    };
    let presented: [u8; 32] = Sha256::digest(token).into();
    presented.ct_eq(expected).into()
}

/// The credentials of a `Bearer` authorization value (scheme
/// case-insensitive, RFC 6750 §2.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.strip_prefix(b" ")?.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Who acts: the sanitised `Sluice-Actor` header, or [`DEFAULT_ACTOR`].
#[derive(Debug, Clone)]
pub(crate) struct Actor(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let actor = parts
            .headers
            .get(ACTOR_HEADER)
            .and_then(|v| sanitize_actor(&String::from_utf8_lossy(v.as_bytes())))
            .unwrap_or_else(|| DEFAULT_ACTOR.to_string());
        Ok(Actor(actor))
    }
}

/// Keeps letters, digits and `-_.@:+ ` (other characters become `_`),
/// trims, and cuts to [`MAX_ACTOR_LEN`] characters; `None` when nothing is left.
pub fn sanitize_actor(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .trim()
        .chars()
        .take(MAX_ACTOR_LEN)
        .map(|c| {
            if c.is_alphanumeric() || "-_.@:+ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim().to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn hash(t: &str) -> [u8; 32] {
        Sha256::digest(t.as_bytes()).into()
    }

    fn auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_tokens() {
        let want = hash("s3cret-token-123");
        assert!(token_matches(&auth("Bearer s3cret-token-123"), &want));
        assert!(token_matches(&auth("bearer s3cret-token-123"), &want));
        assert!(!token_matches(&auth("Bearer s3cret-token-12"), &want));
        assert!(!token_matches(&auth("Bearer s3cret-token-1234"), &want));
        assert!(!token_matches(&auth("Basic s3cret-token-123"), &want));
        assert!(!token_matches(&auth("Bearers3cret-token-123"), &want));
        assert!(!token_matches(&auth("Bearer "), &hash("")));
        assert!(!token_matches(&HeaderMap::new(), &want));
        let mut two = auth("Bearer s3cret-token-123");
        two.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-token-123"),
        );
        assert!(!token_matches(&two, &want));
    }

    #[test]
    fn actors_are_sanitised() {
        assert_eq!(sanitize_actor(" alice@ops ").as_deref(), Some("alice@ops"));
        assert_eq!(sanitize_actor("a\nb<c>").as_deref(), Some("a_b_c_"));
        assert_eq!(sanitize_actor("   "), None);
        assert_eq!(
            sanitize_actor(&"x".repeat(100)).unwrap().len(),
            MAX_ACTOR_LEN
        );
    }
}
