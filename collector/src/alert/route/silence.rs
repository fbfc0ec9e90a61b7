//! Silences, as Alertmanager's `silence/silence.go` keeps them, in memory and
//! optionally in a JSON file. API v2 shapes: a matcher is
//! `{"name","value","isRegex","isEqual"}`; a silence is `{"id","status":{"state"},
//! "updatedAt","matchers","startsAt","endsAt","createdBy","comment"}`.
//!
//! File format (`save`/`load`): a JSON array of silences in that same shape
//! (without `status`, which is derived from the times), written to a temporary
//! file and renamed so a crash leaves the old or the new file, never half of one.

use std::{
    collections::BTreeMap,
    hash::{BuildHasher, Hasher},
    path::Path,
};

use serde::{Deserialize, Serialize};

use crate::alert::notify::alertmanager::rfc3339;
use crate::model::{Labels, MatchOp, Matcher};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl ApiMatcher {
    fn compile(&self) -> Result<Matcher, String> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        if self.name.is_empty() {
            return Err("matcher with an empty label name".into());
        }
        Matcher::new(op, &self.name, &self.value).map_err(|e| {
            let msg = e.to_string();
            let last = msg.lines().last().unwrap_or("").trim().to_string();
            format!(
                "matcher {}: invalid regex {:?}: {last}",
                self.name, self.value
            )
        })
    }
}

/// The body of `POST /api/v2/silences`: a new silence, or an update when `id` is set.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub id: String,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub updated_at: String,
    pub created_by: String,
    pub comment: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Status {
    pub state: &'static str,
}

/// `GET` shape: the stored silence plus its state.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct GettableSilence {
    #[serde(flatten)]
    pub silence: Stored,
    pub status: Status,
}

struct Entry {
    stored: Stored,
    matchers: Vec<Matcher>,
    starts_at: i64,
    ends_at: i64,
}

impl Entry {
    fn state(&self, now: i64) -> &'static str {
        if self.ends_at <= now {
            "expired"
        } else if self.starts_at > now {
            "pending"
        } else {
            "active"
        }
    }
}

#[derive(Default)]
pub struct Silences {
    by_id: BTreeMap<String, Entry>,
}

fn parse_time(field: &str, s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{field}: {s:?} is not an RFC 3339 time: {e}"))
}

/// A random version-4-shaped UUID, as Alertmanager's silence IDs; std's
/// randomly seeded hasher is enough entropy for IDs and avoids a new dependency.
fn new_id() -> String {
    let r = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let (a, b) = (r(), r());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

impl Silences {
    /// Validates and stores; returns the ID. With an `id` it updates that
    /// silence (an expired one is replaced by a new ID, as Alertmanager does).
    pub fn create(&mut self, p: PostableSilence, now: i64) -> Result<String, String> {
        if p.matchers.is_empty() {
            return Err("matchers: at least one matcher is required".into());
        }
        let matchers = p
            .matchers
            .iter()
            .map(ApiMatcher::compile)
            .collect::<Result<Vec<_>, _>>()?;
        if matchers.iter().all(Matcher::matches_empty) {
            return Err("matchers: at least one matcher must not match the empty string".into());
        }
        let mut starts_at = parse_time("startsAt", &p.starts_at)?;
        let ends_at = parse_time("endsAt", &p.ends_at)?;
        if ends_at <= starts_at {
            return Err("endsAt: must be after startsAt".into());
        }
        if ends_at <= now {
            return Err("endsAt: must not be in the past".into());
        }
        // A start in the past means "now", as Alertmanager records it.
        starts_at = starts_at.max(now);
        let id = match p.id.filter(|s| !s.is_empty()) {
            Some(id) => match self.by_id.get(&id) {
                None => return Err(format!("id: no silence {id:?}")),
                Some(e) if e.state(now) == "expired" => new_id(),
                Some(_) => id,
            },
            None => new_id(),
        };
        let stored = Stored {
            id: id.clone(),
            matchers: p.matchers,
            starts_at: rfc3339(starts_at),
            ends_at: rfc3339(ends_at),
            updated_at: rfc3339(now),
            created_by: p.created_by,
            comment: p.comment,
        };
        self.by_id.insert(
            id.clone(),
            Entry {
                stored,
                matchers,
                starts_at,
                ends_at,
            },
        );
        Ok(id)
    }

    pub fn get(&self, id: &str, now: i64) -> Option<GettableSilence> {
        self.by_id.get(id).map(|e| GettableSilence {
            silence: e.stored.clone(),
            status: Status {
                state: e.state(now),
            },
        })
    }

    pub fn list(&self, now: i64) -> Vec<GettableSilence> {
        self.by_id
            .keys()
            .filter_map(|id| self.get(id, now))
            .collect()
    }

    /// Ends a silence now (a pending one also starts now, so it never ran).
    pub fn expire(&mut self, id: &str, now: i64) -> Result<(), String> {
        let e = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| format!("no silence {id:?}"))?;
        if e.state(now) == "expired" {
            return Err(format!("silence {id} is already expired"));
        }
        e.starts_at = e.starts_at.min(now);
        e.ends_at = now;
        e.stored.starts_at = rfc3339(e.starts_at);
        e.stored.ends_at = rfc3339(now);
        e.stored.updated_at = rfc3339(now);
        Ok(())
    }

    /// Whether an active silence matches every label matcher.
    pub fn silenced(&self, labels: &Labels, now: i64) -> bool {
        self.by_id
            .values()
            .any(|e| e.state(now) == "active" && crate::model::matches_all(&e.matchers, labels))
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let all: Vec<&Stored> = self.by_id.values().map(|e| &e.stored).collect();
        let json = serde_json::to_vec_pretty(&all).map_err(|e| e.to_string())?;
        // Synced before the rename: a silence the API acknowledged survives a crash.
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Loads a file written by `save`; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Silences, String> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Silences::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let all: Vec<Stored> =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut s = Silences::default();
        for (i, st) in all.into_iter().enumerate() {
            let at = |e: String| format!("{}: silence {i} ({}): {e}", path.display(), st.id);
            let matchers = st
                .matchers
                .iter()
                .map(ApiMatcher::compile)
                .collect::<Result<Vec<_>, _>>()
                .map_err(at)?;
            let starts_at = parse_time("startsAt", &st.starts_at).map_err(at)?;
            let ends_at = parse_time("endsAt", &st.ends_at).map_err(at)?;
            s.by_id.insert(
                st.id.clone(),
                Entry {
                    stored: st,
                    matchers,
                    starts_at,
                    ends_at,
                },
            );
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn post(matchers: Vec<ApiMatcher>, from: i64, to: i64) -> PostableSilence {
        PostableSilence {
            id: None,
            matchers,
            starts_at: rfc3339(from),
            ends_at: rfc3339(to),
            created_by: "me".into(),
            comment: "maintenance".into(),
        }
    }

    fn eq(name: &str, value: &str) -> ApiMatcher {
        ApiMatcher {
            name: name.into(),
            value: value.into(),
            is_regex: false,
            is_equal: true,
        }
    }

    #[test]
    fn active_silence_mutes_until_it_ends_or_expires() {
        let mut s = Silences::default();
        let l = Labels::from_pairs([("alertname", "Down"), ("env", "prod")]);
        let id = s
            .create(post(vec![eq("env", "prod")], T0 + 10_000, T0 + 60_000), T0)
            .unwrap();
        assert!(!s.silenced(&l, T0), "pending");
        assert_eq!(s.get(&id, T0).unwrap().status.state, "pending");
        assert!(s.silenced(&l, T0 + 10_000));
        assert!(!s.silenced(&Labels::from_pairs([("env", "dev")]), T0 + 10_000));
        assert!(!s.silenced(&l, T0 + 60_000), "ended");
        s.expire(&id, T0 + 20_000).unwrap();
        assert!(!s.silenced(&l, T0 + 20_000));
        assert_eq!(s.list(T0 + 20_000)[0].status.state, "expired");
        assert!(
            s.expire(&id, T0 + 30_000)
                .unwrap_err()
                .contains("already expired")
        );
    }

    #[test]
    fn create_validates() {
        let mut s = Silences::default();
        let e = s.create(post(vec![], T0, T0 + 1000), T0).unwrap_err();
        assert!(e.contains("at least one matcher"), "{e}");
        let e = s
            .create(post(vec![eq("a", "b")], T0 + 1000, T0 + 1000), T0)
            .unwrap_err();
        assert!(e.starts_with("endsAt: must be after startsAt"), "{e}");
        let bad = ApiMatcher {
            name: "a".into(),
            value: "(".into(),
            is_regex: true,
            is_equal: true,
        };
        let e = s.create(post(vec![bad], T0, T0 + 1000), T0).unwrap_err();
        assert!(e.contains("invalid regex"), "{e}");
        let e = s
            .create(post(vec![eq("a", "")], T0, T0 + 1000), T0)
            .unwrap_err();
        assert!(e.contains("empty string"), "{e}");
        assert!(s.list(T0).is_empty());
    }

    #[test]
    fn persists_to_json_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silences.json");
        let mut s = Silences::default();
        let id = s
            .create(post(vec![eq("env", "prod")], T0, T0 + 60_000), T0)
            .unwrap();
        s.save(&path).unwrap();
        let back = Silences::load(&path).unwrap();
        assert_eq!(back.get(&id, T0 + 1), s.get(&id, T0 + 1));
        assert!(back.silenced(&Labels::from_pairs([("env", "prod")]), T0 + 1));
        assert!(
            Silences::load(&dir.path().join("none.json"))
                .unwrap()
                .list(T0)
                .is_empty()
        );
    }
}
