//! The one error type LogQL returns: a bad query (400, with a position for
//! syntax errors, worded like Loki's so Grafana users recognise it), a limit
//! reached (422, saying which limit and how to change it), or a read failure (500).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The query text is wrong, or the data it reads cannot be used as asked
    /// (a pipeline error in a metric query).
    BadQuery,
    /// A configured limit was reached.
    Limit,
    /// The log source failed.
    Internal,
}

/// An error from parsing or running a LogQL query.
#[derive(Debug, Clone)]
pub struct LogQlError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl LogQlError {
    pub(crate) fn bad(message: impl Into<String>) -> LogQlError {
        LogQlError {
            kind: ErrorKind::BadQuery,
            message: message.into(),
        }
    }

    /// A syntax error at a 1-based line and column, in Loki's words.
    pub(crate) fn syntax(line: usize, col: usize, what: impl fmt::Display) -> LogQlError {
        LogQlError::bad(format!(
            "parse error at line {line}, col {col}: syntax error: {what}"
        ))
    }

    /// A parse-time error that has no single position (Loki prints `parse error : ...`).
    pub(crate) fn parse(what: impl fmt::Display) -> LogQlError {
        LogQlError::bad(format!("parse error : {what}"))
    }

    pub(crate) fn limit(message: impl Into<String>) -> LogQlError {
        LogQlError {
            kind: ErrorKind::Limit,
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> LogQlError {
        LogQlError {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }

    /// 400 for a bad query, 422 for a limit, 500 for a read failure.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            ErrorKind::BadQuery => 400,
            ErrorKind::Limit => 422,
            ErrorKind::Internal => 500,
        }
    }

    /// The Prometheus-style `errorType` for the API's error body.
    pub fn error_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::BadQuery => "bad_data",
            ErrorKind::Limit => "execution",
            ErrorKind::Internal => "internal",
        }
    }

    /// The message alone (same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LogQlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LogQlError {}

impl From<crate::logs::model::LogReadError> for LogQlError {
    fn from(e: crate::logs::model::LogReadError) -> LogQlError {
        LogQlError::internal(format!("reading logs: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_types() {
        let e = LogQlError::syntax(1, 5, "unexpected IDENTIFIER");
        assert_eq!(e.http_status(), 400);
        assert_eq!(e.error_type(), "bad_data");
        assert_eq!(
            e.to_string(),
            "parse error at line 1, col 5: syntax error: unexpected IDENTIFIER"
        );
        assert_eq!(LogQlError::limit("x").http_status(), 422);
        assert_eq!(LogQlError::internal("x").http_status(), 500);
    }
}
