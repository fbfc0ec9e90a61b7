//! What both binaries' flags and config files parse alike, so a size or a bad
//! file reads the same way in `sonde-agent` and `sonde-collector`.

use std::{path::Path, process::ExitCode};

use serde::de::DeserializeOwned;

/// Parses the command line. `--help` and `--version` print and end the program
/// with success; a mistake prints one line, naming the flag, and ends it with 2
/// (clap would add usage lines).
pub fn parse_flags<F: clap::Parser>(program: &str) -> Result<F, ExitCode> {
    match F::try_parse() {
        Ok(f) => Ok(f),
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            eprintln!("{program}: {first} (see --help)");
            Err(ExitCode::from(2))
        }
        Err(e) => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
    }
}

/// Sizes as Prometheus writes them: a number with an optional unit, decimal
/// (`KB`, `MB`, `GB`, `TB`) or binary (`KiB`, `MiB`, `GiB`, `TiB`); `B` or none
/// for bytes. `example` goes into the hint of an error (e.g. "256MiB").
pub fn parse_bytes(s: &str, example: &str) -> Result<u64, String> {
    let hint = format!("write e.g. {example}, 500MB or 1048576");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1000u64.pow(2),
        "GB" => 1000u64.pow(3),
        "TB" => 1000u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => return Err(format!("unknown unit {other:?} ({hint})")),
    };
    let n: f64 = num.parse().map_err(|_| format!("not a size ({hint})"))?;
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err("too large".into());
    }
    Ok(bytes as u64)
}

/// Reads and parses a TOML config file. Errors are one line naming the file
/// and, where toml knows it, the line: `agent.toml:3: unknown field ...`.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        // toml's message spans several lines with a source excerpt; keep one line.
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
        let msg = e.message().replace('\n', " ");
        match line {
            Some(n) => format!("{}:{n}: {msg}", path.display()),
            None => format!("{}: {msg}", path.display()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("256MiB", "1GiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1.5KB", "1GiB"), Ok(1500));
        assert_eq!(parse_bytes("10GiB", "1GiB"), Ok(10 << 30));
        assert_eq!(parse_bytes(" 42 ", "1GiB"), Ok(42));
        for bad in ["", "12XB", "MiB", "-1", "1e400"] {
            assert!(parse_bytes(bad, "1GiB").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn toml_errors_name_file_and_line() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct F {
            a: Option<u32>,
        }
        let dir = std::env::temp_dir().join(format!("sonde-cli-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.toml");
        std::fs::write(&p, "a = 1\nb = 2\n").unwrap();
        let e = load_toml::<F>(&p).unwrap_err();
        assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");
        assert!(!e.contains('\n'));
        let e = load_toml::<F>(&dir.join("missing.toml")).unwrap_err();
        assert!(e.contains("missing.toml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
