//! The rule manager: loads the rule files, runs each group on its own thread at
//! its interval, hands due alerts to the notifier, and reloads (SIGHUP or
//! `POST /-/reload`) without losing alert state: a new group adopts the alerts
//! of the old group with the same file and name.
//!
//! Evaluation is synchronous (the PromQL engine is), so groups run on plain
//! threads rather than the async runtime's workers.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use crate::{
    logs::{logql::LogQlLimits, model::LogSource},
    query::{Engine, EngineOptions},
    store::Storage,
};

use super::{
    group::{Expander, GroupRun, GroupSpec, Sources},
    notify::alertmanager::Notifier,
    rules::Lang,
};

#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// Rule files (`--rule-files`, PromQL) and log rule files
    /// (`--log-rule-files`, LogQL).
    pub files: Vec<(PathBuf, Lang)>,
    /// A group's interval when it names none (Prometheus's
    /// `global.evaluation_interval`, 1m).
    pub default_interval: Duration,
    /// How often a still-active alert is sent again (`--rules.alert.resend-delay`, 1m).
    pub resend_delay: Duration,
    /// Used in alerts' `generatorURL` and as `$externalURL`.
    pub external_url: String,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            files: Vec::new(),
            default_interval: Duration::from_secs(60),
            resend_delay: Duration::from_secs(60),
            external_url: String::new(),
        }
    }
}

/// Loads rule files into group specs; the error is one line naming file,
/// group and rule.
pub type Loader =
    dyn Fn(&[(PathBuf, Lang)], Duration) -> Result<Vec<GroupSpec>, String> + Send + Sync;

/// A group and the flag that stops its thread.
struct Running {
    group: Arc<Mutex<GroupRun>>,
    stop: Arc<AtomicBool>,
}

pub struct RuleManager {
    opts: ManagerOptions,
    storage: Arc<dyn Storage>,
    engine_options: EngineOptions,
    logs: Option<Arc<dyn LogSource>>,
    expander: Arc<dyn Expander>,
    notifier: Notifier,
    loader: Box<Loader>,
    running: Mutex<Vec<Running>>,
}

impl RuleManager {
    /// Loads the files and starts every group; a bad file is an error and
    /// nothing starts. `logs` is what log rules query.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        opts: ManagerOptions,
        storage: Arc<dyn Storage>,
        engine_options: EngineOptions,
        logs: Option<Arc<dyn LogSource>>,
        expander: Arc<dyn Expander>,
        notifier: Notifier,
        loader: Box<Loader>,
    ) -> Result<Arc<RuleManager>, String> {
        let m = Arc::new(RuleManager {
            opts,
            storage,
            engine_options,
            logs,
            expander,
            notifier,
            loader,
            running: Mutex::new(Vec::new()),
        });
        m.reload()?;
        Ok(m)
    }

    /// Reads the files again. On an error the running groups are left as they
    /// were and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        let specs = (self.loader)(&self.opts.files, self.opts.default_interval)?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut old: BTreeMap<(PathBuf, String), Running> = running
            .drain(..)
            .map(|r| {
                r.stop.store(true, Ordering::SeqCst);
                let key = {
                    let g = r.group.lock().unwrap_or_else(|e| e.into_inner());
                    (g.file.clone(), g.spec_name.clone())
                };
                (key, r)
            })
            .collect();
        for spec in specs {
            let mut group = GroupRun::new(spec);
            if let Some(prev) = old.remove(&(group.file.clone(), group.spec_name.clone())) {
                // The old thread has been told to stop; it holds the lock only
                // while evaluating, so this waits at most one evaluation.
                let mut prev = prev.group.lock().unwrap_or_else(|e| e.into_inner());
                let taken = std::mem::replace(&mut *prev, GroupRun::new(empty_spec()));
                group.adopt(taken);
            }
            running.push(self.spawn(group));
        }
        tracing::info!(
            groups = running.len(),
            files = self.opts.files.len(),
            "rules loaded"
        );
        Ok(())
    }

    fn spawn(&self, group: GroupRun) -> Running {
        let group = Arc::new(Mutex::new(group));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (group.clone(), stop.clone());
        let storage = self.storage.clone();
        let src = Sources {
            engine: Engine::new(self.storage.clone(), self.engine_options.clone()),
            logs: self.logs.clone(),
            log_limits: LogQlLimits::default(),
        };
        let (expander, notifier) = (self.expander.clone(), self.notifier.clone());
        let (resend, url) = (self.opts.resend_delay, self.opts.external_url.clone());
        let name = g.lock().map(|g| g.spec_name.clone()).unwrap_or_default();
        let spawned = std::thread::Builder::new()
            .name(format!(
                "rules-{}",
                name.chars().take(8).collect::<String>()
            ))
            .spawn(move || {
                loop {
                    let interval = g
                        .lock()
                        .map(|g| g.interval)
                        .unwrap_or(Duration::from_secs(60));
                    let Some(ts) = sleep_until_next(interval, &s) else {
                        return;
                    };
                    let (due, exprs) = {
                        let mut run = g.lock().unwrap_or_else(|e| e.into_inner());
                        let due = run.eval(ts, &storage, &src, &*expander, resend);
                        let exprs = run.alert_exprs();
                        (due, exprs)
                    };
                    notifier.send(&due, |a| {
                        let expr = a
                            .labels
                            .get("alertname")
                            .and_then(|n| exprs.get(n))
                            .map_or("", String::as_str);
                        generator_url(&url, expr)
                    });
                }
            });
        if let Err(e) = spawned {
            tracing::error!(group = %name, error = %e, "cannot start the rule group's thread");
        }
        Running { group, stop }
    }

    /// The groups as they are now, for the API.
    pub fn groups(&self) -> Vec<Arc<Mutex<GroupRun>>> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.iter().map(|r| r.group.clone()).collect()
    }

    pub fn external_url(&self) -> &str {
        &self.opts.external_url
    }
}

impl Drop for RuleManager {
    fn drop(&mut self) {
        for r in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            r.stop.store(true, Ordering::SeqCst);
        }
    }
}

fn empty_spec() -> GroupSpec {
    GroupSpec {
        name: String::new(),
        file: PathBuf::new(),
        interval: Duration::from_secs(60),
        limit: 0,
        rules: Vec::new(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sleeps to the next multiple of `interval` (evaluations land on a grid, so
/// restarts and reloads keep the same timestamps); `None` once told to stop.
fn sleep_until_next(interval: Duration, stop: &AtomicBool) -> Option<i64> {
    let step = (interval.as_millis() as i64).max(1);
    let next = (now_ms() / step + 1) * step;
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        let left = next - now_ms();
        if left <= 0 {
            return Some(next);
        }
        std::thread::sleep(Duration::from_millis(left.min(100) as u64));
    }
}

/// Prometheus's generator URL: the expression in its graph page.
fn generator_url(external: &str, expr: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!(
        "{}/graph?g0.expr={q}&g0.tab=1",
        external.trim_end_matches('/')
    )
}
