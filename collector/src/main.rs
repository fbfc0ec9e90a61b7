//! sonde-collector: opens the metric and log stores, then serves the
//! Prometheus and Loki HTTP APIs, remote_write, Loki push and OTLP metrics and
//! logs (HTTP and gRPC) until SIGTERM or SIGINT; flushes the log store on the way out.

use std::{
    net::SocketAddr,
    path::Path,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus_client::registry::Registry;
use sonde_collector::{
    alert::{
        self,
        manager::{ManagerOptions, RuleManager},
        notify::{alertmanager::Notifier, http_post::post_json},
        route::{self, Router, api::SilenceApi, config::RouteConfig, silence::Silences},
    },
    api::{
        self, ApiState,
        auth::{self, AuthMetrics},
    },
    config::{self, Command, Config, Flags, LogFormat},
    ingest::{self, Ingester},
    logs::{
        self,
        api::{LogApiMetrics, LogApiState},
        ingest::LogIngester,
        logql::LogQlLimits,
        store::{LogStore, LogStoreOptions},
    },
    query::{EngineOptions, test_script},
    store::{
        Storage,
        tsdb::{Tsdb, TsdbOptions},
    },
    tls::{Port, Tls},
    traces::{
        self,
        api::TraceApiState,
        ingest::TraceIngester,
        store::{TraceStore, TraceStoreOptions},
    },
};
use tokio::sync::watch;
use tracing::{error, info, warn};

// glibc malloc spent about a third of ingest CPU (malloc_consolidate, unlink_chunk)
// on the many small label strings a write allocates and frees across threads.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let flags: Flags = match sonde_cli_config::parse_flags("sonde-collector") {
        Ok(f) => f,
        Err(code) => return code,
    };
    if let Some(Command::PromqlTest { files }) = &flags.command {
        return promql_test(files);
    }
    if let Some(Command::TestRules { files }) = &flags.command {
        return test_rules(files);
    }
    let cfg = match Config::resolve(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sonde-collector: {e}");
            return ExitCode::from(2);
        }
    };
    if flags.check_config {
        return match cfg.check_files() {
            Ok(()) => {
                println!("{cfg:#?}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sonde-collector: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(e) = init_logging(&cfg) {
        eprintln!("sonde-collector: --log-level: {e}");
        return ExitCode::from(2);
    }
    // A bad rule file is a bad config: one line, before anything starts.
    if let Err(e) = alert::load::groups(&cfg.all_rule_files(), cfg.evaluation_interval) {
        eprintln!("sonde-collector: rule files: {e}");
        return ExitCode::from(2);
    }
    if let Some(Err(e)) = cfg.alert_routes.as_deref().map(RouteConfig::load) {
        eprintln!("sonde-collector: --alert-routes {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sonde-collector: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("sonde-collector: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `promql-test FILE...`: each failure, then `N passed, N failed`; exit 1 on
/// any failure or unreadable file.
fn promql_test(files: &[std::path::PathBuf]) -> ExitCode {
    run_test_files(files, |f| {
        test_script::run_file(f).map(|r| (r.passed, r.failed, r.failures))
    })
}

/// `test-rules FILE...` (rule unit tests, as `promtool test rules`): the same
/// output and exit codes as `promql-test`.
fn test_rules(files: &[std::path::PathBuf]) -> ExitCode {
    run_test_files(files, |f| {
        alert::unittest::run_file(f).map(|r| (r.passed, r.failed, r.failures))
    })
}

/// Runs each file with `run` (passed, failed, failure texts; `Err` for a file
/// that cannot be run), prints each failure, then `N passed, N failed`.
fn run_test_files(
    files: &[std::path::PathBuf],
    run: impl Fn(&Path) -> Result<(usize, usize, Vec<String>), String>,
) -> ExitCode {
    let (mut passed, mut failed, mut broken) = (0, 0, false);
    for f in files {
        match run(f) {
            Ok((p, n, failures)) => {
                for line in &failures {
                    println!("FAIL {line}");
                }
                passed += p;
                failed += n;
            }
            Err(e) => {
                eprintln!("sonde-collector: {e}");
                broken = true;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 || broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn init_logging(cfg: &Config) -> Result<(), String> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cfg.log_level).map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

async fn bind(what: &str, addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--{what} {addr}: {e}"))
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    // Bind first: a taken port is reported at once, not after a long recovery;
    // connections wait in the backlog until storage is ready.
    let http = bind("http-listen", cfg.http_listen).await?;
    let otlp_http = bind("otlp-http-listen", cfg.otlp_http_listen).await?;
    let grpc = bind("grpc-listen", cfg.grpc_listen).await?;
    let mut registry = Registry::default();
    // Certificates and keys are checked before the (possibly long) storage recovery.
    let tls = match &cfg.tls {
        Some(files) => Some(Tls::load(files, &mut registry).map_err(|e| anyhow::anyhow!(e))?),
        None => None,
    };
    warn_about_plaintext(&cfg);

    let data_dir = absolute(&cfg.data_dir)?;
    let opts = TsdbOptions {
        retention_time: cfg.retention_time,
        retention_bytes: cfg.retention_size,
        max_series: cfg.max_series,
        ooo_window: cfg.ooo_window,
    };
    let dir = data_dir.clone();
    let tsdb = Arc::new(
        tokio::task::spawn_blocking(move || Tsdb::open(&dir, opts))
            .await?
            .map_err(|e| anyhow::anyhow!("--data-dir {}: {e}", data_dir.display()))?,
    );
    let storage: Arc<dyn Storage> = tsdb.clone();

    let logs_dir = data_dir.join("logs");
    let log_opts = LogStoreOptions {
        retention_time: cfg.logs_retention_time,
        retention_bytes: cfg.logs_retention_size,
        max_streams: cfg.logs_max_streams,
        ..LogStoreOptions::default()
    };
    let dir = logs_dir.clone();
    let log_store = Arc::new(
        tokio::task::spawn_blocking(move || LogStore::open(&dir, log_opts))
            .await?
            .map_err(|e| anyhow::anyhow!("--data-dir {}: log store: {e}", logs_dir.display()))?,
    );
    let traces_dir = data_dir.join("traces");
    let trace_opts = TraceStoreOptions {
        retention_time: cfg.traces_retention_time,
        max_spans_per_trace: cfg.traces_max_spans_per_trace,
        ..TraceStoreOptions::default()
    };
    let dir = traces_dir.clone();
    let trace_store = Arc::new(
        tokio::task::spawn_blocking(move || TraceStore::open(&dir, trace_opts))
            .await?
            .map_err(|e| {
                anyhow::anyhow!("--data-dir {}: trace store: {e}", traces_dir.display())
            })?,
    );

    let ingester = Ingester::new(storage.clone(), &mut registry, cfg.max_request_bytes);
    let log_ingester = LogIngester::new(log_store.clone(), &mut registry, cfg.max_request_bytes);
    let trace_ingester =
        TraceIngester::new(trace_store.clone(), &mut registry, cfg.max_request_bytes);
    api::own_metrics::register(&mut registry, storage.clone());
    let log_api = LogApiState {
        store: log_store.clone(),
        limits: LogQlLimits {
            max_lines: cfg.logs_max_lines,
            ..LogQlLimits::default()
        },
        timeout: cfg.query_timeout,
        metrics: LogApiMetrics::new(&mut registry, log_store.clone()),
    };
    let engine_options = EngineOptions {
        lookback: cfg.lookback_delta,
        max_samples: cfg.query_max_samples,
        timeout: cfg.query_timeout,
    };
    let logs: Arc<dyn logs::model::LogSource> = log_store.clone();
    let router = start_router(&cfg, &data_dir, &mut registry)?;
    let rules = start_rules(
        &cfg,
        storage.clone(),
        logs,
        engine_options.clone(),
        router.as_ref().map(|s| s.router.clone()),
        &mut registry,
    )?;
    let auth_metrics = AuthMetrics::new(&mut registry);
    let state = ApiState {
        storage: storage.clone(),
        engine_options,
        registry: Arc::new(registry),
        admin: cfg.enable_admin_api.then_some(tsdb),
    };
    // The HTTP API port carries both: writes (remote_write, OTLP/HTTP, Loki push) follow
    // --auth-token-file, everything else but the health endpoints --api-token-file.
    let require = |listener, flag, token: Option<&config::Token>| {
        axum::middleware::from_fn_with_state(
            auth_metrics.check(listener, flag, token),
            auth::require,
        )
    };
    let ingest_token = cfg.auth_token.as_ref();
    let mut api_app = api::routes(state)
        .merge(logs::api::routes(log_api))
        .merge(traces::api::routes(TraceApiState {
            store: trace_store.clone(),
        }))
        .merge(api::rules::routes(rules.clone()));
    if let Some(silences) = router {
        api_app = api_app.merge(route::api::routes(silences));
    }
    let main_app = api_app
        .layer(require("http", "--api-token-file", cfg.api_token.as_ref()))
        .merge(
            ingest::http::routes(ingester.clone())
                .merge(logs::ingest::http::routes(log_ingester.clone()))
                .merge(traces::ingest::http::routes(trace_ingester.clone()))
                .layer(require("http", "--auth-token-file", ingest_token)),
        )
        .fallback(api::not_found);
    let otlp_app = ingest::http::otlp_routes(ingester.clone())
        .merge(logs::ingest::http::otlp_routes(log_ingester.clone()))
        .merge(traces::ingest::http::routes(trace_ingester.clone()))
        .layer(require("otlp_http", "--auth-token-file", ingest_token))
        .fallback(api::not_found);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let http_task = serve_http(
        http,
        tls.as_ref().map(|t| (t, Port::Api)),
        main_app,
        stopped(stop_rx.clone()),
    );
    let otlp_task = serve_http(
        otlp_http,
        tls.as_ref().map(|t| (t, Port::OtlpHttp)),
        otlp_app,
        stopped(stop_rx.clone()),
    );
    let grpc_auth = auth_metrics.check("grpc", "--auth-token-file", ingest_token);
    let grpc_router = tonic::transport::Server::builder()
        .layer(tonic::service::InterceptorLayer::new(grpc_auth.grpc()))
        .add_service(ingest::grpc::service(ingester))
        .add_service(logs::ingest::grpc::service(log_ingester))
        .add_service(traces::ingest::grpc::service(trace_ingester));
    let grpc_task = match &tls {
        None => tokio::spawn(grpc_router.serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc),
            stopped(stop_rx.clone()),
        )),
        Some(t) => tokio::spawn(grpc_router.serve_with_incoming_shutdown(
            t.listen(grpc, Port::Grpc).into_stream(),
            stopped(stop_rx.clone()),
        )),
    };

    info!(
        data_dir = %data_dir.display(),
        logs_dir = %data_dir.join("logs").display(),
        http = %cfg.http_listen,
        otlp_http = %cfg.otlp_http_listen,
        grpc = %cfg.grpc_listen,
        tls = tls.is_some(),
        "ready"
    );
    println!("sonde-collector: data in {}", data_dir.display());

    tokio::spawn(reload_on_sighup(rules.clone()));
    let signal = shutdown_signal().await;
    info!(signal, "stopping: finishing requests in flight");
    let _ = stop_tx.send(true);
    http_task.await??;
    otlp_task.await??;
    grpc_task.await??;
    // Every acknowledged entry is already in the WAL; flushing cuts the open
    // chunks so the next start has no WAL to replay.
    let store = log_store.clone();
    match tokio::task::spawn_blocking(move || store.flush()).await {
        Ok(Ok(())) => info!("log store flushed"),
        Ok(Err(e)) => error!(error = %e, "flushing the log store (the WAL still holds its data)"),
        Err(e) => error!(error = %e, "flushing the log store"),
    }
    let store = trace_store.clone();
    match tokio::task::spawn_blocking(move || store.flush()).await {
        Ok(Ok(())) => info!("trace store flushed"),
        Ok(Err(e)) => error!(error = %e, "flushing the trace store (the WAL still holds its data)"),
        Err(e) => error!(error = %e, "flushing the trace store"),
    }
    info!("stopped");
    Ok(())
}

/// Serves `app` on `listener`, over TLS when `tls` is given.
fn serve_http(
    listener: tokio::net::TcpListener,
    tls: Option<(&Tls, Port)>,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    match tls {
        None => tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .into_future(),
        ),
        Some((tls, port)) => tokio::spawn(
            axum::serve(tls.listen(listener, port), app)
                .with_graceful_shutdown(stop)
                .into_future(),
        ),
    }
}

/// The plaintext rule (see `tls.rs`): without --tls-cert-file the collector serves
/// plaintext as it always has, and says so; the agent refuses an http:// collector unless
/// it is given --collector-insecure, so no agent sends plaintext without being told to.
fn warn_about_plaintext(cfg: &Config) {
    match &cfg.tls {
        None => {
            warn!(
                "serving plaintext gRPC and HTTP (no --tls-cert-file); agents must be started with --collector-insecure to push here"
            );
            if cfg.auth_token.is_some() || cfg.api_token.is_some() {
                warn!(
                    "bearer tokens over plaintext can be read by anyone on the network; give --tls-cert-file and --tls-key-file"
                );
            }
        }
        Some(t) if t.client_ca.is_some() && cfg.auth_token.is_none() => warn!(
            "--tls-client-ca-file guards --grpc-listen and --otlp-http-listen; the write endpoints of --http-listen are open without --auth-token-file"
        ),
        Some(_) => {}
    }
}

/// A webhook receiver that has not answered in this long has failed this attempt.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The built-in router (`--alert-routes`) posting webhooks, with its silences
/// (kept in <data-dir>/silences.json) behind the API it returns.
fn start_router(
    cfg: &Config,
    data_dir: &Path,
    registry: &mut Registry,
) -> anyhow::Result<Option<SilenceApi>> {
    let Some(path) = &cfg.alert_routes else {
        return Ok(None);
    };
    let routes = RouteConfig::load(path).map_err(|e| anyhow::anyhow!("--alert-routes {e}"))?;
    let file = data_dir.join("silences.json");
    let mut router = Router::new(routes, cfg.external_url.clone());
    router.silences = Silences::load(&file).map_err(|e| anyhow::anyhow!("silences: {e}"))?;
    let router = Arc::new(Mutex::new(router));
    let counters = route::webhook::Counters::default();
    let r = registry.sub_registry_with_prefix("sonde_collector_webhook_notifications");
    r.register(
        "sent",
        "Webhook notifications delivered (2xx)",
        counters.sent.clone(),
    );
    r.register(
        "failed",
        "Webhook notifications given up after their retries",
        counters.failed.clone(),
    );
    tokio::spawn(route::run(
        router.clone(),
        counters,
        |url, body| async move { post_json(&url, body, WEBHOOK_TIMEOUT).await },
    ));
    info!(routes = %path.display(), "built-in alert routing on");
    Ok(Some(SilenceApi {
        router,
        file: Some(file),
    }))
}

/// The rule manager and the notifiers behind it (Alertmanager, and `router` if any).
fn start_rules(
    cfg: &Config,
    storage: Arc<dyn Storage>,
    logs: Arc<dyn logs::model::LogSource>,
    engine_options: EngineOptions,
    router: Option<Arc<Mutex<Router>>>,
    registry: &mut Registry,
) -> anyhow::Result<Arc<RuleManager>> {
    let urls = cfg
        .alertmanager_urls
        .iter()
        .map(|u| {
            u.parse()
                .map_err(|e| anyhow::anyhow!("--alertmanager-url {u}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut notifier = Notifier::start(urls, registry).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(r) = router {
        notifier = notifier.with_router(r);
    }
    let expander = Arc::new(alert::expand::Prometheus::new(
        storage.clone(),
        engine_options.clone(),
        cfg.external_url.clone(),
    ));
    let opts = ManagerOptions {
        files: cfg.all_rule_files(),
        default_interval: cfg.evaluation_interval,
        resend_delay: cfg.alert_resend_delay,
        external_url: cfg.external_url.clone(),
    };
    RuleManager::start(
        opts,
        storage,
        engine_options,
        Some(logs),
        expander,
        notifier,
        Box::new(alert::load::groups),
    )
    .map_err(|e| anyhow::anyhow!("rule files: {e}"))
}

/// SIGHUP reloads the rule files, as it does for Prometheus; a bad file keeps the old rules.
async fn reload_on_sighup(rules: Arc<RuleManager>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        let r = rules.clone();
        match tokio::task::spawn_blocking(move || r.reload()).await {
            Ok(Ok(())) => info!("rules reloaded (SIGHUP)"),
            Ok(Err(e)) => error!(error = %e, "rule reload failed; the previous rules stay"),
            Err(e) => error!(error = %e, "rule reload failed"),
        }
    }
}

fn absolute(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::path::absolute(dir).map_err(|e| anyhow::anyhow!("--data-dir {}: {e}", dir.display()))
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
