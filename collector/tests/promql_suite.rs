//! Prometheus v2.42's own PromQL test scripts, run against Sonde's engine.
//! The scripts live beside the repository (`../shared/peer-suites/promql-v2.42`);
//! a missing directory is a failure, never a skip.

use std::path::PathBuf;

use sonde_collector::query::test_script::run_file;

#[test]
fn prometheus_promql_test_scripts_pass() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/peer-suites/promql-v2.42");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("PromQL peer suite missing at {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test files in {}", dir.display());

    let (mut passed, mut failed) = (0, 0);
    let mut problems = Vec::new();
    for f in &files {
        match run_file(f) {
            Ok(r) => {
                println!("{}: {} passed, {} failed", f.display(), r.passed, r.failed);
                for msg in &r.failures {
                    println!("  FAIL {msg}");
                }
                passed += r.passed;
                failed += r.failed;
            }
            Err(e) => {
                println!("{}: cannot run: {e}", f.display());
                problems.push(e);
            }
        }
    }
    println!(
        "total: {passed} passed, {failed} failed, {} unrunnable files",
        problems.len()
    );
    assert!(problems.is_empty(), "unrunnable scripts: {problems:#?}");
    assert_eq!(
        failed, 0,
        "{failed} PromQL evaluations failed (see output above)"
    );
}
