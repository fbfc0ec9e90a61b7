//! `ContainerRuntimeUnhealthy`: connect to the container runtime's socket; a
//! connect that fails or does not finish within the timeout is a problem. A
//! listening socket is what every runtime client needs first; a deeper check
//! (a CRI `Version` call) is left for later. Names as NPD's
//! health-checker-containerd.json (reason `ContainerdUnhealthy` for containerd).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::net::UnixStream;

use super::{Check, Verdict, condition};
use crate::detect::problem::ConditionDefault;

/// Where runtimes listen, in the order the default picks the first that exists.
pub const RUNTIME_SOCKETS: [&str; 3] = [
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/var/run/docker.sock",
];

const KIND: &str = "ContainerRuntimeUnhealthy";

/// The first of [`RUNTIME_SOCKETS`] that exists under `rootfs` (the host's root
/// as the agent sees it), if any.
pub fn detect_runtime_socket(rootfs: &Path) -> Option<PathBuf> {
    RUNTIME_SOCKETS
        .iter()
        .map(|s| rootfs.join(s.trim_start_matches('/')))
        .find(|p| p.exists())
}

pub(super) struct Runtime {
    socket: PathBuf,
    timeout: Duration,
    /// NPD's reason for containerd, a generic one for the others.
    problem: &'static str,
}

impl Runtime {
    pub fn new(socket: PathBuf, timeout: Duration) -> Runtime {
        let problem = if socket.to_string_lossy().contains("containerd") {
            "ContainerdUnhealthy"
        } else {
            "ContainerRuntimeUnhealthy"
        };
        Runtime {
            socket,
            timeout,
            problem,
        }
    }
}

impl Check for Runtime {
    fn defaults(&self) -> Vec<ConditionDefault> {
        vec![condition(
            KIND,
            "ContainerRuntimeIsHealthy",
            "Container runtime on the node is functioning properly",
            &[self.problem],
        )]
    }

    fn round(&mut self) -> BoxFuture<'_, Vec<(&'static str, Verdict)>> {
        Box::pin(async move {
            let r =
                match tokio::time::timeout(self.timeout, UnixStream::connect(&self.socket)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no connection within {:?}", self.timeout)),
                };
            vec![(KIND, judge(&self.socket, self.problem, r))]
        })
    }
}

fn judge(socket: &Path, problem: &str, connect: Result<(), String>) -> Verdict {
    match connect {
        Ok(()) => Verdict::Healthy,
        Err(e) => Verdict::Problem {
            reason: problem.to_string(),
            message: format!(
                "cannot connect to the container runtime socket {}: {e}",
                socket.display()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_follows_the_runtime() {
        let c = Runtime::new(RUNTIME_SOCKETS[0].into(), Duration::from_secs(1));
        assert_eq!(c.defaults()[0].problem_reasons, ["ContainerdUnhealthy"]);
        let c = Runtime::new(RUNTIME_SOCKETS[1].into(), Duration::from_secs(1));
        assert_eq!(
            c.defaults()[0].problem_reasons,
            ["ContainerRuntimeUnhealthy"]
        );
        assert_eq!(
            judge(Path::new("/s"), "X", Err("refused".into())),
            Verdict::Problem {
                reason: "X".into(),
                message: "cannot connect to the container runtime socket /s: refused".into()
            }
        );
    }

    #[tokio::test]
    async fn real_connects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let mut c = Runtime::new(path.clone(), Duration::from_secs(5));
        assert_eq!(c.round().await, vec![(KIND, Verdict::Healthy)]);
        drop(listener); // the socket file stays, nobody listens: refused
        let out = c.round().await;
        assert!(matches!(&out[0].1, Verdict::Problem { .. }), "{out:?}");
        let mut missing = Runtime::new(dir.path().join("none.sock"), Duration::from_secs(5));
        assert!(matches!(
            &missing.round().await[0].1,
            Verdict::Problem { .. }
        ));
    }

    #[test]
    fn detects_the_first_existing_socket_under_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect_runtime_socket(dir.path()), None);
        let crio = dir.path().join("var/run/crio/crio.sock");
        std::fs::create_dir_all(crio.parent().unwrap()).unwrap();
        std::fs::write(&crio, "").unwrap();
        assert_eq!(detect_runtime_socket(dir.path()), Some(crio));
    }
}
