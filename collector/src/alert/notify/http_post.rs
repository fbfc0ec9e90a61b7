//! One JSON POST over plain HTTP/1.1 (Alertmanager and webhook receivers on the
//! cluster network); a fresh connection per batch keeps failure handling trivial.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Uri, body::Bytes, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Error bodies are kept for the log, up to this much.
const MAX_BODY: usize = 4096;

/// Posts `body` to `url`; `Ok` only for a 2xx answer.
pub async fn post_json(url: &Uri, body: Bytes, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, post(url, body)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn post(uri: &Uri, body: Bytes) -> Result<(), String> {
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs are supported".into());
    }
    let authority = uri.authority().ok_or("the URL has no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((authority.host().trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = Request::post(path)
        .header(header::HOST, authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("sonde-collector/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    if status.is_success() {
        return Ok(());
    }
    let text = Limited::new(res.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
        .unwrap_or_default();
    Err(format!("answered {}: {text}", status.as_u16()))
}
