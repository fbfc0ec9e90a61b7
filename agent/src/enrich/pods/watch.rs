//! The list-watch loop that keeps a [`PodIndex`] current.
//!
//! kube's `watcher` does the protocol work: list, watch from the list's resourceVersion,
//! resume from the last seen version (bookmarks keep it fresh), relist after `410 Gone`.
//! `default_backoff()` spaces out retries while the API server is unreachable.
//! Below that, kube's client retries 429/503/504 answers itself, honouring `Retry-After`;
//! we keep that default, as API priority and fairness expects of clients. It does mean an
//! API that answers 503 is reported (and warned about) only once those retries run out.

use std::{
    path::Path,
    pin::pin,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{WatchStreamExt, watcher},
};
use tracing::{debug, info, warn};

use super::{PodConfig, PodIndex, PodMeta, meta::pod_meta};

/// While the API is unreachable, at most one warning per this long.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Starts the watch on the current tokio runtime; returns at once. Never panics on API errors.
///
/// Errors only when there is nothing to watch with: an unusable kubeconfig (the message
/// names the file), no credentials to infer, an empty node name, or no tokio runtime.
/// Everything that can go wrong later (API down, 403, 410) is retried, logged, and leaves
/// the index as it was.
pub fn spawn_watcher(cfg: PodConfig) -> anyhow::Result<PodIndex> {
    if cfg.node_name.is_empty() {
        bail!("watching pods needs this node's name, and it is empty");
    }
    let runtime =
        tokio::runtime::Handle::try_current().context("watching pods needs a tokio runtime")?;
    let client = client(cfg.kubeconfig.as_deref())?;
    let index = PodIndex::default();
    runtime.spawn(run(Api::all(client), cfg, index.clone()));
    Ok(index)
}

/// A client from `kubeconfig`, or the inferred config (KUBECONFIG, ~/.kube/config,
/// the in-cluster service account). Errors name the file. Also used by the problem
/// reporter (`export::kube`).
pub fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    // kube's config loading is synchronous work behind an async signature (it reads files
    // and parses YAML), so one poll finishes it and we can fail here, before returning.
    let config = match kubeconfig {
        Some(path) => {
            let unusable = || format!("kubeconfig {} is unusable", path.display());
            let file = Kubeconfig::read_from(path).with_context(unusable)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .now_or_never()
                .context("loading the kubeconfig did not complete at once")
                .and_then(|r| r.map_err(Into::into))
                .with_context(unusable)?
        }
        None => Config::infer()
            .now_or_never()
            .context("inferring the Kubernetes config did not complete at once")?
            .context(
                "no Kubernetes credentials: no KUBECONFIG, no ~/.kube/config, and not in a pod",
            )?,
    };
    let source = kubeconfig.map_or("the inferred Kubernetes config".to_string(), |p| {
        p.display().to_string()
    });
    Client::try_from(config).with_context(|| format!("building a Kubernetes client from {source}"))
}

async fn run(api: Api<Pod>, cfg: PodConfig, index: PodIndex) {
    // Bookmarks are on by default: they keep our resourceVersion fresh, so a reconnect can
    // resume instead of relisting.
    let selector = format!("spec.nodeName={}", cfg.node_name);
    let mut events =
        pin!(watcher(api, watcher::Config::default().fields(&selector)).default_backoff());
    let mut writer = IndexWriter {
        index,
        label_keys: cfg.label_keys,
        node: cfg.node_name,
        relist: None,
    };
    let mut health = Health::default();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                health.ok();
                writer.apply(event);
            }
            Err(err) => {
                health.failed(&err);
            }
        }
    }
}

/// Applies watcher events to the index.
struct IndexWriter {
    index: PodIndex,
    label_keys: Vec<String>,
    node: String,
    /// The pods of a (re)list in progress, swapped in whole at `InitDone`.
    relist: Option<Vec<PodMeta>>,
}

impl IndexWriter {
    fn apply(&mut self, event: watcher::Event<Pod>) {
        match event {
            // A new list starts; one that broke off halfway is simply discarded.
            watcher::Event::Init => self.relist = Some(Vec::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(meta), Some(relist)) = (self.meta(&pod), &mut self.relist) {
                    relist.push(meta);
                }
            }
            watcher::Event::InitDone => {
                let pods = self.relist.take().unwrap_or_default();
                let count = pods.len();
                self.index.replace(pods);
                info!(node = %self.node, pods = count, "pod metadata synced from the Kubernetes API");
            }
            watcher::Event::Apply(pod) => {
                if let Some(meta) = self.meta(&pod) {
                    self.index.upsert(meta);
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.index.remove(uid);
                }
            }
        }
    }

    fn meta(&self, pod: &Pod) -> Option<PodMeta> {
        let meta = pod_meta(pod, &self.label_keys);
        if meta.is_none() {
            debug!(name = ?pod.metadata.name, "skipping a pod without a UID");
        }
        meta
    }
}

/// Rate-limited reporting of API trouble.
#[derive(Default)]
struct Health {
    failing_since: Option<Instant>,
    last_warning: Option<Instant>,
    /// Errors since the last warning that were not warned about.
    quiet_errors: u64,
}

impl Health {
    /// Logs a watch error; returns whether it was worth a warning.
    fn failed(&mut self, err: &watcher::Error) -> bool {
        // 410 Gone is routine (our version fell out of the server's window): kube relists.
        if let watcher::Error::WatchError(status) = err
            && status.code == 410
        {
            debug!("pod watch expired (410 Gone); relisting");
            return false;
        }
        self.failing_since.get_or_insert_with(Instant::now);
        if self.last_warning.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            self.quiet_errors += 1;
            debug!(error = %err, "Kubernetes API still unreachable");
            return false;
        }
        warn!(
            error = %err,
            errors_since_last_warning = self.quiet_errors,
            "Kubernetes API unreachable; keeping the pod metadata we have and retrying"
        );
        self.last_warning = Some(Instant::now());
        self.quiet_errors = 0;
        true
    }

    fn ok(&mut self) {
        if let Some(since) = self.failing_since.take() {
            info!(after = ?since.elapsed(), "Kubernetes API reachable again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn warnings_are_rate_limited_and_410_is_not_one() {
        let mut health = Health::default();
        let gone = watcher::Error::WatchError(
            Status::failure("too old resource version", "Expired")
                .with_code(410)
                .boxed(),
        );
        assert!(!health.failed(&gone), "a 410 is routine");
        assert!(health.failing_since.is_none());
        let down = watcher::Error::NoResourceVersion;
        assert!(health.failed(&down), "the first error warns");
        assert!(!health.failed(&down) && !health.failed(&down), "then quiet");
        assert_eq!(health.quiet_errors, 2);
        health.last_warning = Instant::now().checked_sub(WARN_EVERY);
        assert!(health.failed(&down), "a minute later it warns again");
        assert_eq!(health.quiet_errors, 0);
        health.ok();
        assert!(health.failing_since.is_none());
    }
}
