//! The Kubernetes manifests in `deploy/` against real tools and the code they deploy:
//!
//! - every manifest file and every kustomize build (the base, each overlay, the
//!   Prometheus-operator component through its overlay), built by a real kustomize
//!   (`kubectl kustomize`), validates with `kubernetes-validate --strict` for the oldest
//!   and the newest Kubernetes version we support ([`K8S_VERSIONS`]). Its schemas do not
//!   know the Prometheus operator's CRDs (ServiceMonitor, PrometheusRule); those are
//!   checked here by shape instead ([`check_crd`]), and anything else kubernetes-validate
//!   has no schema for is a failure, not its warning;
//! - the ConfigMaps the pods mount are materialized where the pods would see them and
//!   the real `sonde-agent` and `sonde-collector` run with the pods' own args plus
//!   `--check-config`, so a shipped config the code would refuse fails here;
//! - the rules ConfigMap, the PrometheusRules and the redaction rules are the files
//!   in `deploy/` they are copied from;
//! - the agent's ClusterRole grants exactly the (resource, verb) pairs its source calls.
//!
//! Needs the venv `cargo xtask setup` makes (target/sonde-py, with kubernetes-validate
//! and PyYAML) and `kubectl` (its built-in kustomize); without them it fails, it never skips.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::{Value, json};
use sonde_tests::{agent_binary, collector::collector_binary, workspace_root};

/// The oldest and newest Kubernetes versions the manifests must validate against: 1.29
/// (the oldest release still in some providers' extended support, and the first where
/// every field used here is GA) and the newest kubernetes-validate 1.37 knows.
const K8S_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

/// Every kustomization users apply, relative to the workspace root.
const BUILDS: [&str; 4] = [
    "deploy/base",
    "deploy/overlays/small",
    "deploy/overlays/forward",
    "deploy/overlays/prometheus-operator",
];

/// Kinds that are CRDs of the Prometheus operator: not in kubernetes-validate's schemas.
const CRD_KINDS: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

// ---------------------------------------------------------------------------------
// Tools

fn venv_bin(name: &str) -> PathBuf {
    let p = workspace_root().join("target/sonde-py/bin").join(name);
    assert!(
        p.is_file(),
        "{} is missing: `cargo xtask setup` installs kubernetes-validate into target/sonde-py",
        p.display()
    );
    p
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `kubectl kustomize DIR`: kubectl's built-in kustomize, the one `kubectl apply -k` uses.
fn kustomize(dir: &str) -> String {
    let kubectl = sonde_tests::require_binary("kubectl");
    let out = run(
        Command::new(kubectl)
            .arg("kustomize")
            .arg(workspace_root().join(dir)),
        None,
    );
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The YAML documents of `yaml`, as JSON (PyYAML's safe loader, from the venv).
fn yaml_docs(yaml: &str) -> Vec<Value> {
    let out = run(
        Command::new(venv_bin("python3")).args([
            "-c",
            "import sys, json, yaml\n\
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ]),
        Some(yaml),
    );
    assert!(out.status.success(), "parsing YAML:\n{}", text(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(workspace_root().join(rel))
        .unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn describe(doc: &Value) -> String {
    format!("{}/{}", kind(doc), name(doc))
}

// ---------------------------------------------------------------------------------
// kubernetes-validate

/// Validates `docs` (none of them CRDs) strictly for every version in [`K8S_VERSIONS`].
/// Fails on any error, and on any document kubernetes-validate has no schema for (it
/// only warns about those and exits 0). `what` names the source in messages.
fn validate_strictly(what: &str, docs: &[Value]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let path = dir
            .path()
            .join(format!("{i:02}-{}.json", describe(doc).replace('/', "-")));
        std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
        files.push(path);
    }
    let mut cmd = Command::new(venv_bin("kubernetes-validate"));
    cmd.arg("--strict");
    for v in K8S_VERSIONS {
        cmd.args(["-k", v]);
    }
    let out = run(cmd.args(&files), None);
    let report = text(&out);
    let passed = report
        .lines()
        .filter(|l| l.starts_with("INFO") && l.contains(" passed for resource "))
        .count();
    let bad: Vec<&str> = report
        .lines()
        .filter(|l| !l.starts_with("INFO") && !l.trim().is_empty())
        .collect();
    if !out.status.success() || !bad.is_empty() || passed != docs.len() * K8S_VERSIONS.len() {
        return Err(format!(
            "{what}: kubernetes-validate --strict {K8S_VERSIONS:?} did not pass all of {} documents \
             ({passed} passed, exit {:?}):\n{}",
            docs.len(),
            out.status.code(),
            if bad.is_empty() {
                report.clone()
            } else {
                bad.join("\n")
            }
        ));
    }
    Ok(())
}

/// Splits off the CRDs, checks them by shape against the rest of `docs`, and validates
/// the rest strictly.
fn validate_all(what: &str, docs: &[Value]) {
    assert!(!docs.is_empty(), "{what}: no documents");
    let (crds, plain): (Vec<Value>, Vec<Value>) = docs
        .iter()
        .cloned()
        .partition(|d| CRD_KINDS.contains(&kind(d)));
    for crd in &crds {
        check_crd(what, crd, docs);
    }
    validate_strictly(what, &plain).unwrap_or_else(|e| panic!("{e}"));
}

/// Manifest files under deploy/ (kustomizations, configs and rule files are not
/// Kubernetes objects).
fn manifest_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                // deploy/rules and their copies are Prometheus rule files, not objects.
                if p.file_name().is_some_and(|n| n == "rules") {
                    continue;
                }
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&workspace_root().join("deploy"), &mut out);
    out.sort();
    out
}

#[test]
fn every_manifest_file_validates_strictly() {
    let files = manifest_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(workspace_root())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    for want in [
        "deploy/base/agent/daemonset.yaml",
        "deploy/base/agent/rbac.yaml",
        "deploy/base/collector/statefulset.yaml",
        "deploy/base/collector/service.yaml",
        "deploy/base/namespace/namespace.yaml",
        "deploy/components/prometheus-operator/prometheusrules.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not found among {names:?}"
        );
    }
    // Objects of the files as written (a file may omit the namespace kustomize sets).
    let mut all = Vec::new();
    for (path, name) in files.iter().zip(&names) {
        let docs = yaml_docs(&std::fs::read_to_string(path).unwrap());
        assert!(!docs.is_empty(), "{name}: no documents");
        all.extend(docs);
    }
    validate_all("deploy/ files", &all);
}

#[test]
fn every_kustomize_build_validates_strictly() {
    for dir in BUILDS {
        let docs = yaml_docs(&kustomize(dir));
        validate_all(dir, &docs);
        for d in &docs {
            if kind(d) != "Namespace" && !kind(d).starts_with("ClusterRole") {
                assert_eq!(
                    d["metadata"]["namespace"],
                    "sonde",
                    "{dir}: {} is not in namespace sonde",
                    describe(d)
                );
            }
        }
    }
}

/// The validation above can fail: an unknown field, and a kind without a schema.
#[test]
fn strict_validation_refuses_what_it_should() {
    let docs = yaml_docs(&kustomize("deploy/base"));
    let mut ds = docs
        .iter()
        .find(|d| kind(d) == "DaemonSet")
        .unwrap()
        .clone();
    ds["spec"]["template"]["spec"]["containers"][0]["hostPid"] = json!(true);
    let e = validate_strictly("typo", &[ds]).unwrap_err();
    assert!(e.contains("hostPid"), "{e}");
    let unknown =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let e = validate_strictly("unknown kind", &[unknown]).unwrap_err();
    assert!(e.contains("Widget"), "{e}");
}

// ---------------------------------------------------------------------------------
// CRDs by shape

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn check_only_keys(what: &str, v: &Value, allowed: &[&str]) {
    let extra: Vec<&str> = keys(v)
        .into_iter()
        .filter(|k| !allowed.contains(k))
        .collect();
    assert!(extra.is_empty(), "{what}: unexpected fields {extra:?}");
}

/// A ServiceMonitor must select a Service of `docs` that has each endpoint's port; a
/// PrometheusRule's `spec.groups` must be the `groups` of the rule file it names.
fn check_crd(what: &str, doc: &Value, docs: &[Value]) {
    let at = format!("{what}: {}", describe(doc));
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1", "{at}");
    check_only_keys(&at, doc, &["apiVersion", "kind", "metadata", "spec"]);
    assert!(!name(doc).is_empty(), "{at}: no name");
    let spec = &doc["spec"];
    match kind(doc) {
        "ServiceMonitor" => {
            check_only_keys(&at, spec, &["selector", "namespaceSelector", "endpoints"]);
            let wanted = spec["selector"]["matchLabels"]
                .as_object()
                .expect("matchLabels");
            let endpoints = spec["endpoints"].as_array().expect("endpoints");
            assert!(!endpoints.is_empty(), "{at}: no endpoints");
            let services: Vec<&Value> = docs
                .iter()
                .filter(|d| kind(d) == "Service")
                .filter(|d| wanted.iter().all(|(k, v)| &d["metadata"]["labels"][k] == v))
                .collect();
            // Whole files are checked without the base's Services; builds with them.
            if docs.iter().any(|d| kind(d) == "DaemonSet") {
                assert_eq!(
                    services.len(),
                    1,
                    "{at}: selects {} Services",
                    services.len()
                );
            }
            for ep in endpoints {
                check_only_keys(&at, ep, &["port", "path", "interval", "relabelings"]);
                for r in ep["relabelings"].as_array().into_iter().flatten() {
                    check_only_keys(&at, r, &["sourceLabels", "targetLabel"]);
                }
                let port = ep["port"].as_str().expect("endpoint port name");
                for s in &services {
                    assert!(
                        s["spec"]["ports"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["name"] == port),
                        "{at}: Service {} has no port {port}",
                        name(s)
                    );
                }
            }
        }
        "PrometheusRule" => {
            check_only_keys(&at, spec, &["groups"]);
            let source = doc["metadata"]["annotations"]["sonde/source"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: no sonde/source annotation"));
            let file = &yaml_docs(&read(source))[0];
            assert_eq!(
                spec["groups"], file["groups"],
                "{at}: spec.groups differ from {source}"
            );
            for g in spec["groups"].as_array().unwrap() {
                for r in g["rules"].as_array().unwrap() {
                    assert!(
                        r["alert"].is_string() != r["record"].is_string() && r["expr"].is_string(),
                        "{at}: malformed rule {r}"
                    );
                }
            }
        }
        other => panic!("{at}: no shape check for {other}"),
    }
}

/// The committed PrometheusRules file, regenerated from deploy/rules. A mismatch writes
/// the expected file under target/ and says where.
#[test]
fn prometheus_rules_are_the_rule_pack() {
    let mut rule_files: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("deploy/rules"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    rule_files.sort();
    assert!(!rule_files.is_empty());
    let mut docs = Vec::new();
    for f in &rule_files {
        let file = f.file_name().unwrap().to_string_lossy().into_owned();
        let stem = file.trim_end_matches(".rules.yml");
        let mut doc = format!(
            "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: {stem}\n  \
             namespace: sonde\n  labels:\n    app.kubernetes.io/part-of: sonde\n  annotations:\n    \
             sonde/source: deploy/rules/{file}\nspec:"
        );
        for line in std::fs::read_to_string(f).unwrap().lines() {
            doc.push('\n');
            if !line.trim().is_empty() {
                doc.push_str("  ");
                doc.push_str(line);
            }
        }
        docs.push(doc);
    }
    let expected = format!(
        "# Generated from deploy/rules/*.rules.yml: each file's `groups` as a PrometheusRule's\n\
         # `spec.groups`, unchanged. tests/tests/deploy_manifests.rs fails when they differ;\n\
         # it writes the expected file to target/ and names it.\n{}\n",
        docs.join("\n---\n")
    );
    let committed = "deploy/components/prometheus-operator/prometheusrules.yaml";
    if read(committed) != expected {
        let out = workspace_root().join("target/deploy-expected/prometheusrules.yaml");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, &expected).unwrap();
        panic!(
            "{committed} is not deploy/rules as PrometheusRules; the expected file is {}: copy it over",
            out.display()
        );
    }
}

// ---------------------------------------------------------------------------------
// Copies of deploy/ files inside the kustomizations

/// The ConfigMap of `docs` whose name (before kustomize's hash suffix) is `base`.
fn config_map<'a>(docs: &'a [Value], base: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| kind(d) == "ConfigMap")
        .filter(|d| {
            name(d)
                .strip_prefix(base)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        })
        .collect();
    assert_eq!(found.len(), 1, "ConfigMap {base}: found {}", found.len());
    found[0]
}

#[test]
fn config_maps_hold_the_files_of_deploy() {
    let docs = yaml_docs(&kustomize("deploy/base"));
    let rules = config_map(&docs, "sonde-rules");
    let mut want = BTreeMap::new();
    for e in std::fs::read_dir(workspace_root().join("deploy/rules"))
        .unwrap()
        .flatten()
    {
        let file = e.file_name().to_string_lossy().into_owned();
        if file.ends_with(".rules.yml") {
            want.insert(file.clone(), read(&format!("deploy/rules/{file}")));
        }
    }
    let got: BTreeMap<String, String> = rules["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the sonde-rules ConfigMap must hold every deploy/rules/*.rules.yml \
         (copies in deploy/base/collector/rules/, listed in its kustomization.yaml)"
    );
    for (file, body) in &want {
        assert!(
            &got[file] == body,
            "deploy/base/collector/rules/{file} differs from deploy/rules/{file}: copy it over"
        );
    }
    let agent = config_map(&docs, "sonde-agent-config");
    assert_eq!(
        agent["data"]["redaction.toml"].as_str(),
        Some(read("deploy/redaction.toml").as_str()),
        "deploy/base/agent/config/redaction.toml differs from deploy/redaction.toml: copy it over"
    );
}

// ---------------------------------------------------------------------------------
// --check-config with the pods' own args and ConfigMaps

/// One container of a build: its binary, args, env, and the ConfigMaps it mounts
/// (mount path -> data).
struct Pod {
    what: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<(String, BTreeMap<String, String>)>,
}

fn pods(dir: &str, docs: &[Value]) -> Vec<Pod> {
    let mut out = Vec::new();
    for d in docs
        .iter()
        .filter(|d| matches!(kind(d), "DaemonSet" | "StatefulSet" | "Deployment"))
    {
        let spec = &d["spec"]["template"]["spec"];
        let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        let containers = spec["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{dir}: {}", describe(d));
        let c = &containers[0];
        assert!(
            c["command"].is_null(),
            "{dir}: {} sets command; the image's entrypoint is the binary",
            describe(d)
        );
        let mut mounts = Vec::new();
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let claim = d["spec"]["volumeClaimTemplates"]
                .as_array()
                .is_some_and(|c| c.iter().any(|t| t["metadata"]["name"] == m["name"]));
            let Some(vol) = volumes.iter().find(|v| v["name"] == m["name"]) else {
                assert!(
                    claim,
                    "{dir}: {} mounts no volume {}",
                    describe(d),
                    m["name"]
                );
                continue;
            };
            if let Some(cm) = vol["configMap"]["name"].as_str() {
                let data = docs
                    .iter()
                    .find(|x| kind(x) == "ConfigMap" && name(x) == cm)
                    .unwrap_or_else(|| {
                        panic!("{dir}: {} mounts missing ConfigMap {cm}", describe(d))
                    });
                let files = data["data"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                mounts.push((m["mountPath"].as_str().unwrap().to_string(), files));
            }
        }
        // Longest first, so a nested mount path is replaced before its parent.
        mounts.sort_by_key(|(p, _): &(String, _)| std::cmp::Reverse(p.len()));
        let env = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let value = match e["value"].as_str() {
                    Some(v) => v.to_string(),
                    // The downward API's node name, as the kubelet would fill it in.
                    None if e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName" => {
                        "node-1".to_string()
                    }
                    None => panic!("{dir}: unsupported env {e}"),
                };
                (e["name"].as_str().unwrap().to_string(), value)
            })
            .collect();
        out.push(Pod {
            what: format!("{dir}: {}", describe(d)),
            args: c["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a.as_str().unwrap().to_string())
                .collect(),
            env,
            mounts,
        });
    }
    out
}

/// Writes the pod's ConfigMaps under `root` (each mount path below it) and returns its
/// args with every mount path pointing there; mount paths inside the files too.
fn materialize(pod: &Pod, root: &Path) -> Vec<String> {
    let relocate = |s: &str| {
        let mut s = s.to_string();
        for (mount, _) in &pod.mounts {
            let to = root.join(mount.trim_start_matches('/'));
            s = s.replace(&format!("{mount}/"), &format!("{}/", to.display()));
        }
        s
    };
    for (mount, files) in &pod.mounts {
        let dir = root.join(mount.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, body) in files {
            std::fs::write(dir.join(file), relocate(body)).unwrap();
        }
    }
    pod.args.iter().map(|a| relocate(a)).collect()
}

fn check_config(binary: &Path, pod: &Pod, args: &[String]) -> Output {
    let mut cmd = Command::new(binary);
    cmd.args(args).arg("--check-config").env_clear();
    for (k, v) in &pod.env {
        cmd.env(k, v);
    }
    run(&mut cmd, None)
}

#[test]
fn shipped_configs_pass_the_binaries_check_config() {
    let mut checked = BTreeSet::new();
    for dir in BUILDS {
        let docs = yaml_docs(&kustomize(dir));
        for pod in pods(dir, &docs) {
            let tmp = tempfile::tempdir().unwrap();
            let args = materialize(&pod, tmp.path());
            let (binary, expect) = if pod.what.ends_with("DaemonSet/sonde-agent") {
                (
                    agent_binary(),
                    "node_name: Some(\n        \"node-1\",\n    )",
                )
            } else if pod.what.ends_with("StatefulSet/sonde-collector") {
                (collector_binary(), "rule_files: [")
            } else {
                panic!("{}: which binary does it run?", pod.what)
            };
            let out = check_config(&binary, &pod, &args);
            assert!(
                out.status.success(),
                "{}: {} {args:?} --check-config refused the shipped config:\n{}",
                pod.what,
                binary.display(),
                text(&out)
            );
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(
                printed.contains(expect),
                "{}: printed config:\n{printed}",
                pod.what
            );
            // Every file a ConfigMap brings is used: the rule files are all loaded.
            for (mount, files) in &pod.mounts {
                if mount.ends_with("/rules") {
                    for f in files.keys() {
                        assert!(
                            printed.contains(&format!(
                                "{}/{f}\"",
                                tmp.path().join(&mount[1..]).display()
                            )),
                            "{}: {mount}/{f} is mounted but not in rule-files:\n{printed}",
                            pod.what
                        );
                    }
                }
            }
            if dir.ends_with("forward") {
                assert!(
                    printed.contains("url: \"https://sonde-collector.example.com:4317\""),
                    "{}: the forward overlay's collector URL is not in effect:\n{printed}",
                    pod.what
                );
            }
            checked.insert(pod.what.clone());
        }
    }
    for want in [
        "deploy/base: DaemonSet/sonde-agent",
        "deploy/base: StatefulSet/sonde-collector",
        "deploy/overlays/small: StatefulSet/sonde-collector",
        "deploy/overlays/forward: DaemonSet/sonde-agent",
    ] {
        assert!(checked.contains(want), "{want} not checked: {checked:?}");
    }
    assert!(
        !checked.contains("deploy/overlays/forward: StatefulSet/sonde-collector"),
        "the forward overlay must not run a collector"
    );
}

/// `--check-config` can fail: a broken rule file, a bad alert-routes file, a bad key.
#[test]
fn check_config_refuses_a_broken_rule_file() {
    let docs = yaml_docs(&kustomize("deploy/base"));
    let pod = pods("deploy/base", &docs)
        .into_iter()
        .find(|p| p.what.ends_with("StatefulSet/sonde-collector"))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let args = materialize(&pod, tmp.path());
    let rule = tmp.path().join("etc/sonde/rules/sonde-node.rules.yml");
    let good = std::fs::read_to_string(&rule).unwrap();
    std::fs::write(&rule, good.replacen("expr: |", "expr: sum(|", 1)).unwrap();
    let out = check_config(&collector_binary(), &pod, &args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("sonde-collector: rule files: ")
            && err.contains("sonde-node.rules.yml")
            && err.lines().count() == 1,
        "{err}"
    );
    std::fs::write(&rule, good).unwrap();

    let routes = tmp.path().join("routes.yml");
    std::fs::write(&routes, "route:\n  receiver: nowhere\nreceivers: []\n").unwrap();
    let mut with_routes = args.clone();
    with_routes.push(format!("--alert-routes={}", routes.display()));
    let out = check_config(&collector_binary(), &pod, &with_routes);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("sonde-collector: --alert-routes "),
        "{}",
        text(&out)
    );

    let config = tmp.path().join("etc/sonde/config/collector.toml");
    let mut text_cfg = std::fs::read_to_string(&config).unwrap();
    text_cfg.push_str("retention-tme = \"1d\"\n");
    std::fs::write(&config, text_cfg).unwrap();
    let out = check_config(&collector_binary(), &pod, &args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retention-tme"),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------
// RBAC: exactly what the agent's code calls

/// Kubernetes types the agent may hold an `Api<T>` of, and their resource.
const RESOURCES: [(&str, &str); 3] = [("Pod", "pods"), ("Node", "nodes"), ("Event", "events")];

/// kube `Api` methods -> (subresource suffix, verb).
const METHODS: [(&str, &str, &str); 13] = [
    ("get", "", "get"),
    ("get_opt", "", "get"),
    ("get_metadata", "", "get"),
    ("get_status", "/status", "get"),
    ("list", "", "list"),
    ("list_metadata", "", "list"),
    ("watch", "", "watch"),
    ("create", "", "create"),
    ("patch", "", "patch"),
    ("patch_status", "/status", "patch"),
    ("replace", "", "update"),
    ("replace_status", "/status", "update"),
    ("delete", "", "delete"),
];

/// kube-runtime functions that take an `Api` and what they call with it.
const RUNTIME: [(&str, &[&str]); 3] = [
    ("watcher(", &["list", "watch"]),
    ("metadata_watcher(", &["list", "watch"]),
    ("reflector(", &["list", "watch"]),
];

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// (resource, verb) pairs the agent's non-test source calls, each with where.
fn calls_in_agent_source() -> BTreeMap<(String, String), String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace_root().join("agent/src"), &mut files);
    let mut found = BTreeMap::new();
    for path in files {
        let full = std::fs::read_to_string(&path).unwrap();
        // Test modules at the end of a file are not the agent's calls.
        let src = full.split("#[cfg(test)]").next().unwrap();
        let rel = path
            .strip_prefix(workspace_root())
            .unwrap()
            .display()
            .to_string();
        for raw in [
            "request::<",
            "request_text(",
            "request_status(",
            "request_events(",
        ] {
            assert!(
                !src.contains(raw),
                "{rel}: a raw kube request ({raw}); teach this test what it calls"
            );
        }
        // Names bound to an Api: `name: Api<T>` / `name: &Api<T>`; and what T is.
        let mut bound: Vec<(String, String)> = Vec::new();
        let mut rest = src;
        while let Some(i) = rest.find("Api<").or_else(|| rest.find("Api::<")) {
            let after = &rest[i..];
            let ty_start = after.find('<').unwrap() + 1;
            let ty: String = after[ty_start..]
                .chars()
                .take_while(|&c| is_ident(c))
                .collect();
            let before = rest[..i].trim_end_matches('&').trim_end();
            if let Some(b) = before.strip_suffix(':') {
                let ident: String = b
                    .trim_end()
                    .chars()
                    .rev()
                    .take_while(|&c| is_ident(c))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                if !ident.is_empty() {
                    bound.push((ident, ty.clone()));
                }
            }
            assert!(
                RESOURCES.iter().any(|(t, _)| *t == ty),
                "{rel}: Api<{ty}>: not in this test's table; add its resource and grant it"
            );
            rest = &after[ty_start..];
        }
        for (ident, ty) in &bound {
            let resource = RESOURCES.iter().find(|(t, _)| t == ty).unwrap().1;
            // `ident.method(`, not part of a longer name.
            for (at, _) in src.match_indices(&format!("{ident}.")) {
                if src[..at].chars().next_back().is_some_and(is_ident) {
                    continue;
                }
                let method: String = src[at + ident.len() + 1..]
                    .chars()
                    .take_while(|&c| is_ident(c))
                    .collect();
                if !src[at + ident.len() + 1 + method.len()..].starts_with('(') {
                    continue;
                }
                let Some((_, sub, verb)) = METHODS.iter().find(|(m, _, _)| *m == method) else {
                    // Cloning or passing the handle on calls nothing.
                    assert!(
                        matches!(method.as_str(), "clone" | "into" | "resource_url"),
                        "{rel}: {ident}.{method}(...) on an Api<{ty}>: not in this test's table"
                    );
                    continue;
                };
                found.insert(
                    (format!("{resource}{sub}"), verb.to_string()),
                    format!("{rel}: {ident}.{method}"),
                );
            }
            for (func, verbs) in RUNTIME {
                if src.contains(&format!("{func}{ident}")) {
                    for verb in verbs {
                        found.insert(
                            (resource.to_string(), verb.to_string()),
                            format!("{rel}: {func}{ident}, ...)"),
                        );
                    }
                }
            }
        }
    }
    found
}

/// (resource, verb) pairs a ClusterRole grants; core API group only.
fn granted(role: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert_eq!(
            rule["apiGroups"],
            json!([""]),
            "only core resources are used: {rule}"
        );
        assert!(rule["resourceNames"].is_null() && rule["nonResourceURLs"].is_null());
        for r in rule["resources"].as_array().unwrap() {
            for v in rule["verbs"].as_array().unwrap() {
                let (r, v) = (r.as_str().unwrap(), v.as_str().unwrap());
                assert!(r != "*" && v != "*", "no wildcards: {rule}");
                out.insert((r.to_string(), v.to_string()));
            }
        }
    }
    out
}

#[test]
fn cluster_role_grants_exactly_what_the_agent_calls() {
    let calls = calls_in_agent_source();
    // The scan must see the calls we know of, or it is scanning nothing.
    for known in [
        ("pods", "watch"),
        ("nodes/status", "patch"),
        ("events", "create"),
    ] {
        assert!(
            calls.contains_key(&(known.0.to_string(), known.1.to_string())),
            "the scan of agent/src found no {known:?}: {calls:#?}"
        );
    }
    eprintln!("what agent/src calls: {calls:#?}");
    let used: BTreeSet<(String, String)> = calls.keys().cloned().collect();
    for dir in ["deploy/base", "deploy/overlays/forward"] {
        let docs = yaml_docs(&kustomize(dir));
        let roles: Vec<&Value> = docs.iter().filter(|d| kind(d) == "ClusterRole").collect();
        assert_eq!(roles.len(), 1, "{dir}: one ClusterRole");
        let grants = granted(roles[0]);
        let missing: Vec<_> = used.difference(&grants).map(|k| (k, &calls[k])).collect();
        let unused: Vec<_> = grants.difference(&used).collect();
        assert!(
            missing.is_empty() && unused.is_empty(),
            "{dir}: ClusterRole {} differs from what agent/src calls.\n\
             called but not granted: {missing:?}\ngranted but never called: {unused:?}",
            name(roles[0])
        );
        // Bound to the DaemonSet's service account.
        let ds = docs.iter().find(|d| kind(d) == "DaemonSet").unwrap();
        let sa = ds["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .unwrap();
        let bound = docs.iter().any(|d| {
            kind(d) == "ClusterRoleBinding"
                && d["roleRef"]["name"] == name(roles[0])
                && d["subjects"].as_array().unwrap().iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == sa
                        && s["namespace"] == ds["metadata"]["namespace"]
                })
        });
        assert!(bound, "{dir}: ClusterRole not bound to ServiceAccount {sa}");
        // No other credentials: no Role, and the collector gets no token.
        assert!(
            !docs
                .iter()
                .any(|d| kind(d) == "Role" || kind(d) == "RoleBinding")
        );
    }
}
