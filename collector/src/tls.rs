//! TLS on the collector's listeners (`--tls-cert-file`, `--tls-key-file`,
//! `--tls-client-ca-file`): rustls with ring, as the agent and kube use; no OpenSSL.
//!
//! One accept loop serves all three ports: it accepts TCP, runs each handshake in a task of
//! its own (a slow or silent client holds up nobody), counts and logs the ones that fail with
//! why (`sonde_collector_tls_handshake_failures_total{listener, reason}`), and hands the
//! finished streams to axum (the HTTP ports, through [`TlsListener`]) or tonic (gRPC, through
//! [`TlsListener::into_stream`]).
//!
//! The plaintext rule: without `--tls-cert-file` the collector serves plaintext, as it always
//! has (`cargo xtask run`, a mesh that terminates TLS, a port-forward), and says so with a
//! warning at start. Plaintext is explicit on the agent's side instead: it refuses an
//! `http://` collector unless `--collector-insecure` is given.

use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, RootCertStore, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::WebPkiClientVerifier,
    },
    server::TlsStream,
};
use tracing::{debug, warn};

use crate::config::TlsFiles;

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes finished but not yet taken by the server.
const BACKLOG: usize = 64;
/// A failed handshake is logged at warn at most this often per listener (the rest at debug,
/// all counted): a port scanner must not flood the log.
const WARN_EVERY_SECS: u64 = 60;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    listener: String,
    reason: String,
}

/// The server configurations and the failure counter; cheap to clone.
#[derive(Clone, Debug)]
pub struct Tls {
    /// Client certificates required when a client CA is configured.
    ingest: Arc<ServerConfig>,
    /// Never asks for a client certificate: Grafana and promtool have none.
    api: Arc<ServerConfig>,
    failures: Family<FailureLabels, Counter>,
}

/// Which ALPN protocols and client authentication a listener gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// `--grpc-listen`: HTTP/2 only, client certificates if configured.
    Grpc,
    /// `--otlp-http-listen`: HTTP/1.1, client certificates if configured.
    OtlpHttp,
    /// `--http-listen`: HTTP/1.1, no client certificates (its ingest routes follow
    /// `--auth-token-file`).
    Api,
}

impl Port {
    fn name(self) -> &'static str {
        match self {
            Port::Grpc => "grpc",
            Port::OtlpHttp => "otlp_http",
            Port::Api => "http",
        }
    }
}

impl Tls {
    /// Reads and checks the files; errors name the flag and file.
    pub fn load(files: &TlsFiles, registry: &mut Registry) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = CertificateDer::pem_file_iter(&files.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--tls-cert-file {}: {e}", files.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--tls-cert-file {}: no CERTIFICATE in the file",
                files.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| format!("--tls-key-file {}: {e}", files.key.display()))?;
        let builder = || {
            ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))
        };
        let with_cert =
            |b: rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>| {
                b.with_single_cert(certs.clone(), key.clone_key())
                    .map_err(|e| format!("--tls-cert-file/--tls-key-file: {e}"))
            };
        let api = with_cert(builder()?.with_no_client_auth())?;
        let ingest = match &files.client_ca {
            None => api.clone(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(ca)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("--tls-client-ca-file {}: {e}", ca.display()))?;
                let (added, _) = roots.add_parsable_certificates(cas);
                if added == 0 {
                    return Err(format!(
                        "--tls-client-ca-file {}: no usable CA CERTIFICATE in the file",
                        ca.display()
                    ));
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("--tls-client-ca-file {}: {e}", ca.display()))?;
                with_cert(builder()?.with_client_cert_verifier(verifier))?
            }
        };
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "sonde_collector_tls_handshake_failures",
            "TLS handshakes that failed, by listener and reason",
            failures.clone(),
        );
        Ok(Tls {
            ingest: Arc::new(ingest),
            api: Arc::new(api),
            failures,
        })
    }

    fn config(&self, port: Port) -> Arc<ServerConfig> {
        let base = match port {
            Port::Grpc | Port::OtlpHttp => &self.ingest,
            Port::Api => &self.api,
        };
        let mut c = ServerConfig::clone(base);
        c.alpn_protocols = match port {
            Port::Grpc => vec![b"h2".to_vec()],
            // axum serves HTTP/1 here (built without http2).
            Port::OtlpHttp | Port::Api => vec![b"http/1.1".to_vec()],
        };
        Arc::new(c)
    }

    /// Starts the accept loop on `listener`; it ends when the returned listener is dropped.
    pub fn listen(&self, listener: TcpListener, port: Port) -> TlsListener {
        let local = listener.local_addr();
        let (tx, rx) = mpsc::channel(BACKLOG);
        let acceptor = TlsAcceptor::from(self.config(port));
        let failures = self.failures.clone();
        tokio::spawn(accept_loop(listener, acceptor, port, tx, failures));
        TlsListener { rx, local }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    port: Port,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    failures: Family<FailureLabels, Counter>,
) {
    let last_warn = Arc::new(AtomicU64::new(0));
    loop {
        let (tcp, peer) = tokio::select! {
            () = tx.closed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, as axum's own loop does.
                    debug!(listener = port.name(), error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx, failures, last_warn) = (
            acceptor.clone(),
            tx.clone(),
            failures.clone(),
            last_warn.clone(),
        );
        tokio::spawn(async move {
            let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            let (reason, error) = match result {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                    return;
                }
                Ok(Err(e)) => (failure_reason(&e), e.to_string()),
                Err(_) => (
                    "timeout",
                    format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
                ),
            };
            failures
                .get_or_create(&FailureLabels {
                    listener: port.name().into(),
                    reason: reason.into(),
                })
                .inc();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let last = last_warn.load(Ordering::Relaxed);
            if now >= last + WARN_EVERY_SECS
                && last_warn
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                warn!(listener = port.name(), %peer, reason, "TLS handshake failed: {error}");
            } else {
                debug!(listener = port.name(), %peer, reason, "TLS handshake failed: {error}");
            }
        });
    }
}

/// A short label for why a handshake failed.
fn failure_reason(e: &io::Error) -> &'static str {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::NoCertificatesPresented) => "no_client_certificate",
        Some(rustls::Error::InvalidCertificate(_)) => "bad_client_certificate",
        // Most often the client does not trust our certificate (UnknownCA, BadCertificate).
        Some(rustls::Error::AlertReceived(_)) => "client_alert",
        Some(_) => "protocol",
        None => "io",
    }
}

/// Finished TLS connections of one port, for `axum::serve`.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: io::Result<SocketAddr>,
}

impl TlsListener {
    /// The connections as the stream `tonic`'s `serve_with_incoming_shutdown` takes.
    pub fn into_stream(
        self,
    ) -> impl tokio_stream::Stream<Item = Result<TlsStream<TcpStream>, io::Error>> + Send + 'static
    {
        use tokio_stream::StreamExt;
        tokio_stream::wrappers::ReceiverStream::new(self.rx).map(|(s, _)| Ok(s))
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop only ends once this receiver is gone; never here.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}
