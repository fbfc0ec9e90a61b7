//! The span receiver's settings: flags, the `[spans]` table, defaults.
//!
//! ```toml
//! [spans]
//! enabled = true                  # default: on when there is a collector to forward to
//! otlp_grpc_listen = "0.0.0.0:4317"
//! otlp_http_listen = "0.0.0.0:4318"
//! ```
//!
//! The ports are OTLP's own, so an SDK's defaults reach the agent once the
//! DaemonSet maps them as hostPorts.

use std::net::SocketAddr;

use clap::Args;
use serde::Deserialize;

use super::OnOff;

#[derive(Debug, Default, Args)]
pub struct SpanFlags {
    /// Receive application spans over OTLP and forward them to the collector: on or off [default: on with --collector].
    #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
    pub spans: Option<String>,

    /// Where the OTLP/gRPC span receiver listens [default: 0.0.0.0:4317].
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc_listen: Option<SocketAddr>,

    /// Where the OTLP/HTTP span receiver (POST /v1/traces) listens [default: 0.0.0.0:4318].
    #[arg(long, value_name = "ADDR")]
    pub otlp_http_listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpans {
    enabled: Option<OnOff>,
    otlp_grpc_listen: Option<SocketAddr>,
    otlp_http_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct SpansConfig {
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
}

/// `None` when spans are off.
pub fn resolve(
    flags: &SpanFlags,
    file: &FileSpans,
    where_file: &dyn Fn(&str) -> String,
    has_collector: bool,
) -> Result<Option<SpansConfig>, String> {
    let asked = match (&flags.spans, &file.enabled) {
        (Some(v), _) => Some((v == "on", "--spans on".to_string())),
        (None, Some(OnOff::Bool(b))) => Some((*b, where_file("spans.enabled"))),
        (None, Some(OnOff::Text(t))) if t == "on" || t == "off" => {
            Some((t == "on", where_file("spans.enabled")))
        }
        (None, Some(OnOff::Text(t))) => {
            return Err(format!(
                "{}: {t:?}: write \"on\" or \"off\"",
                where_file("spans.enabled")
            ));
        }
        (None, None) => None,
    };
    let enabled = match asked {
        Some((true, at)) if !has_collector => {
            return Err(format!(
                "{at}: spans need a collector to go to (--collector)"
            ));
        }
        Some((on, _)) => on,
        None => has_collector,
    };
    if !enabled {
        return Ok(None);
    }
    let addr = |s: &str| s.parse::<SocketAddr>().expect("a literal address");
    Ok(Some(SpansConfig {
        grpc_listen: flags
            .otlp_grpc_listen
            .or(file.otlp_grpc_listen)
            .unwrap_or_else(|| addr("0.0.0.0:4317")),
        http_listen: flags
            .otlp_http_listen
            .or(file.otlp_http_listen)
            .unwrap_or_else(|| addr("0.0.0.0:4318")),
    }))
}
