//! `KubeletUnhealthy`: GET the kubelet's `/healthz` (served on localhost over
//! plain HTTP); anything but `200` with body `ok`, or no answer within the
//! timeout, is a problem. Names as NPD's health-checker-kubelet.json.

use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, Uri, body::Bytes, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Check, Verdict, condition};
use crate::detect::problem::ConditionDefault;

/// The kubelet's default healthz endpoint (`--healthz-port` 10248, localhost).
pub const DEFAULT_KUBELET_HEALTHZ: &str = "http://127.0.0.1:10248/healthz";

const KIND: &str = "KubeletUnhealthy";
const PROBLEM: &str = "KubeletUnhealthy";
/// More of an answer than a health check ever needs (the kubelet says "ok").
const MAX_BODY: usize = 4096;

pub(super) struct Kubelet {
    url: String,
    timeout: Duration,
}

impl Kubelet {
    pub fn new(url: String, timeout: Duration) -> Kubelet {
        Kubelet { url, timeout }
    }
}

impl Check for Kubelet {
    fn defaults(&self) -> Vec<ConditionDefault> {
        vec![condition(
            KIND,
            "KubeletIsHealthy",
            "kubelet on the node is functioning properly",
            &[PROBLEM],
        )]
    }

    fn round(&mut self) -> BoxFuture<'_, Vec<(&'static str, Verdict)>> {
        Box::pin(async move {
            let answer = match tokio::time::timeout(self.timeout, get(&self.url)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            };
            vec![(KIND, judge(&self.url, answer))]
        })
    }
}

fn judge(url: &str, answer: Result<(u16, String), String>) -> Verdict {
    let why = match answer {
        Ok((200, body)) if body.trim() == "ok" => return Verdict::Healthy,
        Ok((status, body)) => {
            let body: String = body.trim().chars().take(200).collect();
            format!("answered {status}: {body:?}")
        }
        Err(e) => format!("failed: {e}"),
    };
    Verdict::Problem {
        reason: PROBLEM.to_string(),
        message: format!("kubelet health check GET {url} {why}"),
    }
}

/// One plain HTTP/1.1 GET: (status, body up to MAX_BODY bytes).
async fn get(url: &str) -> Result<(u16, String), String> {
    let uri: Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs are supported".into());
    }
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let stream = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // The connection task ends when `sender` is dropped (or the peer closes).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let req = Request::get(path)
        .header(header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body = Limited::new(res.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(judge("u", Ok((200, "ok".into()))), Verdict::Healthy);
        assert_eq!(
            judge("http://x/healthz", Ok((500, "[-]ping failed\n".into()))),
            Verdict::Problem {
                reason: PROBLEM.into(),
                message:
                    "kubelet health check GET http://x/healthz answered 500: \"[-]ping failed\""
                        .into()
            }
        );
        assert!(matches!(
            judge("u", Ok((200, "not ok".into()))),
            Verdict::Problem { .. }
        ));
        assert!(matches!(
            judge("u", Err("connect: refused".into())),
            Verdict::Problem { .. }
        ));
    }

    /// A real HTTP server on localhost answering `status` and `body`.
    async fn serve(status: u16, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/healthz",
            axum::routing::get(move || async move {
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/healthz")
    }

    #[tokio::test]
    async fn real_get_against_a_local_server() {
        let ok = serve(200, "ok").await;
        let mut c = Kubelet::new(ok, Duration::from_secs(5));
        assert_eq!(c.round().await, vec![(KIND, Verdict::Healthy)]);

        let bad = serve(500, "[-]syncloop failed").await;
        let mut c = Kubelet::new(bad.clone(), Duration::from_secs(5));
        let out = c.round().await;
        assert!(
            matches!(&out[0].1, Verdict::Problem { message, .. } if message.contains("500") && message.contains(&bad)),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn refused_silent_and_bad_urls_are_problems() {
        // Bound then dropped: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = Kubelet::new(
            format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(5),
        );
        assert!(
            matches!(&c.round().await[0].1, Verdict::Problem { message, .. } if message.contains("connect"))
        );

        // Accepts but never answers: the timeout decides.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let mut c = Kubelet::new(format!("http://{addr}/healthz"), Duration::from_millis(200));
        assert!(
            matches!(&c.round().await[0].1, Verdict::Problem { message, .. } if message.contains("no answer"))
        );
        drop(silent);

        let mut c = Kubelet::new(
            "https://127.0.0.1:10250/healthz".into(),
            Duration::from_secs(1),
        );
        assert!(
            matches!(&c.round().await[0].1, Verdict::Problem { message, .. } if message.contains("only http://"))
        );
    }
}
