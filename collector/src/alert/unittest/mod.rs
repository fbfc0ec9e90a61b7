//! Prometheus rule unit tests (`promtool test rules` files): `sonde-collector
//! test-rules FILE...` runs them on Sonde's own rule evaluation, so a rule
//! pack's tests prove the same thing under both (see deploy/rules/*.test.yml).
//!
//! ```text
//! file (YAML shapes, checked) -> run (store, evaluate, compare) -> failures
//! ```

mod file;
mod glob;
mod run;

use std::path::Path;

/// What one file's tests found.
#[derive(Debug, Default)]
pub struct FileReport {
    /// Test groups (`tests` entries) that passed and that failed.
    pub passed: usize,
    pub failed: usize,
    /// One paragraph per failure, starting `file: tests[i] (name): `
    /// (without ` (name)` for a test group that has none).
    pub failures: Vec<String>,
}

/// Reads and runs one test file. `Err` (one line naming the file and the
/// field) when it cannot be read or is not a valid test file; failing tests
/// are in the report.
pub fn run_file(path: &Path) -> Result<FileReport, String> {
    let tests = file::read(path)?;
    let mut report = FileReport::default();
    for (i, g) in tests.groups.iter().enumerate() {
        let failures = run::group(&tests, g);
        if failures.is_empty() {
            report.passed += 1;
        } else {
            report.failed += 1;
        }
        let named = match g.name.as_str() {
            "" => String::new(),
            name => format!(" ({name})"),
        };
        report.failures.extend(
            failures
                .into_iter()
                .map(|f| format!("{}: tests[{i}]{named}: {f}", path.display())),
        );
    }
    Ok(report)
}
