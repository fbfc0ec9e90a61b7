//! Bearer tokens (`--auth-token-file` for ingest, `--api-token-file` for the HTTP API):
//! an HTTP middleware and a gRPC interceptor that refuse a request without the right
//! `authorization: Bearer <token>` with 401 (gRPC UNAUTHENTICATED) and a message saying
//! which, counted in `sonde_collector_auth_failures_total{listener, reason}`.
//! `/-/healthy` and `/-/ready` stay open for liveness and readiness probes.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::config::Token;

/// Paths answered without a token.
const OPEN_PATHS: [&str; 2] = ["/-/healthy", "/-/ready"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    listener: String,
    reason: String,
}

/// The failure counter, shared by every check.
#[derive(Clone, Debug, Default)]
pub struct AuthMetrics {
    failures: Family<FailureLabels, Counter>,
}

impl AuthMetrics {
    pub fn new(registry: &mut Registry) -> AuthMetrics {
        let m = AuthMetrics::default();
        registry.register(
            "sonde_collector_auth_failures",
            "Requests refused for a missing or wrong bearer token, by listener and reason",
            m.failures.clone(),
        );
        m
    }

    /// A check of `token` (none: everything passes) for requests on `listener`; `flag`
    /// names the setting in refusals.
    pub fn check(&self, listener: &'static str, flag: &'static str, token: Option<&Token>) -> Auth {
        Auth {
            token: token.map(|t| Arc::from(t.0.as_bytes())),
            listener,
            flag,
            failures: self.failures.clone(),
        }
    }
}

/// One listener's token check; cheap to clone.
#[derive(Clone, Debug)]
pub struct Auth {
    token: Option<Arc<[u8]>>,
    listener: &'static str,
    flag: &'static str,
    failures: Family<FailureLabels, Counter>,
}

impl Auth {
    /// `Ok` for a request carrying the token (or when none is configured); else the message.
    fn verify(&self, authorization: Option<&[u8]>) -> Result<(), String> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let reason = match authorization {
            None => "missing",
            Some(v) => match strip_bearer(v) {
                Some(given) if constant_time_eq(given, token) => return Ok(()),
                Some(_) => "wrong",
                None => "not_bearer",
            },
        };
        self.failures
            .get_or_create(&FailureLabels {
                listener: self.listener.into(),
                reason: reason.into(),
            })
            .inc();
        Err(match reason {
            "missing" => format!(
                "unauthenticated: this endpoint needs an \"Authorization: Bearer <token>\" header (the collector's {})",
                self.flag
            ),
            "wrong" => format!(
                "unauthenticated: the bearer token is not the collector's {}",
                self.flag
            ),
            _ => format!(
                "unauthenticated: the Authorization header must be \"Bearer <token>\" (the collector's {})",
                self.flag
            ),
        })
    }

    /// The gRPC interceptor (for `Server::layer(InterceptorLayer::new(..))`).
    pub fn grpc(
        self,
    ) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
        move |req: tonic::Request<()>| {
            let value = req.metadata().get("authorization").map(|v| v.as_bytes());
            match self.verify(value) {
                Ok(()) => Ok(req),
                Err(message) => Err(tonic::Status::unauthenticated(message)),
            }
        }
    }

    fn verify_headers(&self, headers: &HeaderMap, path: &str) -> Result<(), String> {
        if self.token.is_none() || OPEN_PATHS.contains(&path) {
            return Ok(());
        }
        self.verify(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
    }
}

/// The HTTP middleware: `router.layer(axum::middleware::from_fn_with_state(auth, require))`.
pub async fn require(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    match auth.verify_headers(req.headers(), req.uri().path()) {
        Ok(()) => next.run(req).await,
        Err(message) => (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, "Bearer"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            message + "\n",
        )
            .into_response(),
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn strip_bearer(v: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = v.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// Compares without an early exit, so timing does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: Option<&str>) -> (Auth, Registry) {
        let mut r = Registry::default();
        let m = AuthMetrics::new(&mut r);
        let t = token.map(|t| Token(t.into()));
        (m.check("http", "--api-token-file", t.as_ref()), r)
    }

    #[test]
    fn bearer_tokens_are_checked_and_failures_counted() {
        let (a, r) = auth(Some("s3cret"));
        assert!(a.verify(Some(b"Bearer s3cret")).is_ok());
        assert!(a.verify(Some(b"bearer s3cret")).is_ok());
        let e = a.verify(None).unwrap_err();
        assert!(
            e.contains("Authorization: Bearer") && e.contains("--api-token-file"),
            "{e}"
        );
        assert!(
            a.verify(Some(b"Bearer s3cre"))
                .unwrap_err()
                .contains("not the")
        );
        assert!(a.verify(Some(b"Basic czNjcmV0")).is_err());
        assert!(a.verify(Some(b"Bearer")).is_err());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        for reason in ["missing", "wrong", "not_bearer"] {
            assert!(
                text.contains(&format!(
                    "sonde_collector_auth_failures_total{{listener=\"http\",reason=\"{reason}\"}}"
                )),
                "{text}"
            );
        }
    }

    #[test]
    fn no_token_lets_everything_through_and_health_stays_open() {
        let (a, _) = auth(None);
        assert!(a.verify(None).is_ok());
        let (a, _) = auth(Some("t"));
        let h = HeaderMap::new();
        assert!(a.verify_headers(&h, "/-/ready").is_ok());
        assert!(a.verify_headers(&h, "/-/healthy").is_ok());
        assert!(a.verify_headers(&h, "/api/v1/query").is_err());
    }

    #[test]
    fn grpc_refusals_are_unauthenticated() {
        let (a, _) = auth(Some("t"));
        let mut f = a.grpc();
        let s = f(tonic::Request::new(())).unwrap_err();
        assert_eq!(s.code(), tonic::Code::Unauthenticated);
        let mut req = tonic::Request::new(());
        req.metadata_mut()
            .insert("authorization", "Bearer t".parse().unwrap());
        assert!(f(req).is_ok());
    }
}
