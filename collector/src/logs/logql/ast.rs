//! The parsed form of a LogQL query. Regexes are compiled while parsing so a
//! bad one is a 400 before any data is read.

use crate::model::Matcher;

use super::template::Template;

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// A stream selector and its pipeline.
#[derive(Debug, Clone)]
pub(crate) struct LogExpr {
    pub matchers: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone)]
pub(crate) enum Stage {
    /// A chain of `|=`/`!=`/`|~`/`!~`; several alternatives joined by `or`
    /// keep a line when any of them does.
    LineFilter(LineFilter),
    Json(Vec<(String, JsonPath)>),
    Logfmt {
        /// `--strict`: stop at the first malformed pair (an error) instead of skipping it.
        strict: bool,
        /// `--keep-empty`: keep standalone keys as labels with an empty value.
        keep_empty: bool,
        params: Vec<(String, String)>,
    },
    Regexp(regex::Regex),
    Pattern(super::pattern::Pattern),
    LabelFilter(LabelFilter),
    LineFormat(Template),
    LabelFormat(Vec<LabelFmt>),
    Drop(Vec<NameOrMatcher>),
    Keep(Vec<NameOrMatcher>),
    Decolorize,
}

#[derive(Debug, Clone)]
pub(crate) struct LineFilter {
    pub op: LineOp,
    /// `or` alternatives; for `|=`/`|~` any must match, for `!=`/`!~` none may.
    pub alts: Vec<LineMatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineOp {
    Contains,
    NotContains,
    Match,
    NotMatch,
    /// `|>`: the line matches a pattern (`<_> error <_>`).
    Pattern,
    NotPattern,
}

#[derive(Debug, Clone)]
pub(crate) enum LineMatch {
    Text(String),
    Regex(regex::Regex),
    Pattern(super::pattern::Pattern),
}

/// A JSON path for `json name="path"`: keys and array indexes.
pub(crate) type JsonPath = Vec<JsonStep>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonStep {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone)]
pub(crate) enum LabelFilter {
    Matcher(Matcher),
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    Duration {
        name: String,
        op: CmpOp,
        /// Seconds.
        value: f64,
    },
    Bytes {
        name: String,
        op: CmpOp,
        value: f64,
    },
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub(crate) fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum LabelFmt {
    /// `dst=src`: renames src to dst.
    Rename { dst: String, src: String },
    /// `dst="{{...}}"`.
    Template { dst: String, tmpl: Template },
}

#[derive(Debug, Clone)]
pub(crate) enum NameOrMatcher {
    Name(String),
    Matcher(Matcher),
}

/// A log query with a range, the argument of a range aggregation.
#[derive(Debug, Clone)]
pub(crate) struct LogRange {
    pub log: LogExpr,
    pub range_ns: i64,
    pub offset_ns: i64,
    pub unwrap: Option<Unwrap>,
    /// Label filters after `unwrap`.
    pub post_filters: Vec<LabelFilter>,
}

#[derive(Debug, Clone)]
pub(crate) struct Unwrap {
    pub label: String,
    pub conv: UnwrapConv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnwrapConv {
    Number,
    /// `duration(x)` / `duration_seconds(x)`: a Go duration, as seconds.
    Duration,
    /// `bytes(x)`: a humanized size, as bytes.
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeOp {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
    SumOverTime,
    AvgOverTime,
    MaxOverTime,
    MinOverTime,
    FirstOverTime,
    LastOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    AbsentOverTime,
}

impl RangeOp {
    pub(crate) fn from_name(s: &str) -> Option<RangeOp> {
        Some(match s {
            "count_over_time" => RangeOp::CountOverTime,
            "rate" => RangeOp::Rate,
            "bytes_over_time" => RangeOp::BytesOverTime,
            "bytes_rate" => RangeOp::BytesRate,
            "sum_over_time" => RangeOp::SumOverTime,
            "avg_over_time" => RangeOp::AvgOverTime,
            "max_over_time" => RangeOp::MaxOverTime,
            "min_over_time" => RangeOp::MinOverTime,
            "first_over_time" => RangeOp::FirstOverTime,
            "last_over_time" => RangeOp::LastOverTime,
            "stddev_over_time" => RangeOp::StddevOverTime,
            "stdvar_over_time" => RangeOp::StdvarOverTime,
            "quantile_over_time" => RangeOp::QuantileOverTime,
            "absent_over_time" => RangeOp::AbsentOverTime,
            _ => return None,
        })
    }

    /// Whether the operation needs `| unwrap` (it aggregates values, not lines).
    pub(crate) fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        )
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VecOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
}

impl VecOp {
    pub(crate) fn from_name(s: &str) -> Option<VecOp> {
        Some(match s {
            "sum" => VecOp::Sum,
            "avg" => VecOp::Avg,
            "min" => VecOp::Min,
            "max" => VecOp::Max,
            "count" => VecOp::Count,
            "stddev" => VecOp::Stddev,
            "stdvar" => VecOp::Stdvar,
            "topk" => VecOp::Topk,
            "bottomk" => VecOp::Bottomk,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub(crate) fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le
        )
    }

    pub(crate) fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum MetricExpr {
    Range {
        op: RangeOp,
        /// The φ of `quantile_over_time(φ, ...)`.
        param: Option<f64>,
        range: Box<LogRange>,
        grouping: Option<Grouping>,
    },
    Vector {
        op: VecOp,
        /// The k of topk/bottomk.
        param: Option<f64>,
        grouping: Option<Grouping>,
        inner: Box<MetricExpr>,
    },
    Binary {
        op: BinOp,
        /// `bool` modifier of a comparison: 0/1 instead of filtering.
        return_bool: bool,
        /// `on(...)`/`ignoring(...)` and `group_left/right(...)`.
        matching: VectorMatching,
        lhs: Box<MetricExpr>,
        rhs: Box<MetricExpr>,
    },
    Literal(f64),
    /// `vector(x)`: one series without labels at every step.
    VectorLit(f64),
    /// `label_replace(v, "dst", "replacement", "src", "regex")`.
    LabelReplace {
        inner: Box<MetricExpr>,
        dst: String,
        replacement: String,
        src: String,
        /// Anchored, as in PromQL.
        regex: regex::Regex,
    },
}

/// How vector/vector operators pair samples (PromQL's rules).
#[derive(Debug, Clone, Default)]
pub(crate) struct VectorMatching {
    /// `on(labels)` when true, `ignoring(labels)` (or nothing) when false.
    pub on: bool,
    pub labels: Vec<String>,
    /// `group_left(include)` / `group_right(include)`: many-to-one or one-to-many.
    pub group: Option<Group>,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// The "many" side is the left one.
    pub left: bool,
    /// Labels copied from the "one" side.
    pub include: Vec<String>,
}
