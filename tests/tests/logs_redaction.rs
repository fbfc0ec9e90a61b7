//! Redaction end to end: the agent started with the shipped rules
//! (`--redact deploy/redaction.toml`); a line with an e-mail address and one with a
//! bearer token reach the collector without them, the rest of each line intact, and a
//! line with nothing secret arrives unchanged.

use std::{fs::OpenOptions, io::Write, time::Duration};

use sonde_tests::{
    logs_rig::{LogsRig, redaction_rules},
    logs_writer::{ContainerLog, cri_line, now_rfc3339},
    loki::{now_ns, seq_of, wait_for_seqs},
};

const EMAIL: &str = "alice.liddell@example.com";
const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWhlcmU";

#[test]
fn emails_and_bearer_tokens_arrive_redacted() {
    let rules = redaction_rules().display().to_string();
    let rig = LogsRig::start(&["--redact", &rules]);
    let log = ContainerLog::new(&rig.log_root, "redaction", "web", "app");
    log.create().unwrap();
    let start_ns = now_ns() - 5_000_000_000;
    let lines = [
        format!("seq=0 user {EMAIL} logged in from the front page"),
        format!("seq=1 GET /api/orders Authorization: Bearer {TOKEN} status=200"),
        "seq=2 nothing secret here, order 4711 shipped".to_string(),
    ];
    let mut f = OpenOptions::new().append(true).open(log.live()).unwrap();
    for l in &lines {
        f.write_all(&cri_line(&now_rfc3339(), "stdout", "F", l.as_bytes()))
            .unwrap();
    }
    drop(f);

    let (check, entries) = wait_for_seqs(
        &rig.loki(),
        &log.selector(),
        start_ns,
        0..3,
        Duration::from_secs(30),
    );
    assert!(
        check.exactly_once(),
        "{}\n{}",
        check.summary(),
        rig.logs_for_failure()
    );
    let by_seq = |s: u64| {
        entries
            .iter()
            .find(|e| seq_of(&e.line) == Some(s))
            .map(|e| e.line.clone())
            .unwrap()
    };
    let (email, token, plain) = (by_seq(0), by_seq(1), by_seq(2));
    eprintln!("arrived:\n  {email}\n  {token}\n  {plain}");
    assert!(
        !email.contains(EMAIL) && !email.contains("alice.liddell@"),
        "the e-mail address arrived: {email}"
    );
    assert!(
        email.starts_with("seq=0 user ") && email.ends_with(" logged in from the front page"),
        "redaction changed more than the address: {email}"
    );
    // No part of the token may survive, not even its signature segment.
    assert!(
        !token.contains(TOKEN)
            && !token.contains("c2lnbmF0dXJlLWhlcmU")
            && !token.contains("eyJhbGciOiJIUzI1NiJ9"),
        "the bearer token arrived: {token}"
    );
    assert!(
        token.starts_with("seq=1 GET /api/orders ") && token.ends_with(" status=200"),
        "redaction changed more than the token: {token}"
    );
    assert_eq!(plain, lines[2], "a line without secrets was changed");
}
