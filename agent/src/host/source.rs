//! What every host collector shares: the [`Collect`] trait, the per-scrape view of
//! the host's files ([`Sources`]) and the [`Error`] a failed collector reports.

use std::{
    cell::RefCell,
    fmt,
    fs::File,
    io::{self, Read},
    path::{Path, PathBuf},
    rc::Rc,
    str::FromStr,
};

use prometheus_client::encoding::DescriptorEncoder;

use super::HostPaths;

/// One node_exporter collector.
pub(super) trait Collect: fmt::Debug + Send + Sync {
    /// node_exporter's name for it: the `collector` label of `node_scrape_collector_*`.
    fn name(&self) -> &'static str;

    /// Reads the source and writes the families. An `Err` other than
    /// [`Error::Encode`] marks the collector failed for this scrape, nothing more.
    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error>;
}

/// The label set of a family with one unlabelled sample.
pub(super) const NO_LABELS: [(&str, &str); 0] = [];

/// The host's files as seen during one scrape.
pub(super) struct Sources<'a> {
    paths: &'a HostPaths,
    /// procfs files already read in this scrape. `/proc/stat` feeds both `cpu` and
    /// `stat`, and on large machines producing it is the costliest read of the scrape
    /// (the kernel sums every interrupt over every CPU), so it is read once.
    read: RefCell<Vec<(&'static str, Rc<String>)>>,
}

impl<'a> Sources<'a> {
    pub fn new(paths: &'a HostPaths) -> Self {
        Sources {
            paths,
            read: RefCell::new(Vec::new()),
        }
    }

    /// A procfs file's contents, read at most once per scrape.
    pub fn proc(&self, rel: &'static str) -> Result<Rc<String>, Error> {
        if let Some((_, text)) = self.read.borrow().iter().find(|(r, _)| *r == rel) {
            return Ok(Rc::clone(text));
        }
        let text = Rc::new(read(&self.proc_path(rel))?);
        self.read.borrow_mut().push((rel, Rc::clone(&text)));
        Ok(text)
    }

    /// Like [`Sources::proc`], but a missing file is `None`: for files that exist
    /// only with some kernel options (IPv6, PSI).
    pub fn proc_optional(&self, rel: &'static str) -> Result<Option<Rc<String>>, Error> {
        match self.proc(rel) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn proc_path(&self, rel: &str) -> PathBuf {
        self.paths.procfs.join(rel)
    }

    pub fn sys_path(&self, rel: &str) -> PathBuf {
        self.paths.sysfs.join(rel)
    }

    pub fn rootfs(&self) -> &Path {
        &self.paths.rootfs
    }
}

/// Reads a whole file; the error names the file.
///
/// procfs and sysfs report a size of 0, so `File::read_to_string` would stat and
/// seek the file for nothing and start with tiny reads. Through `take`, which has no
/// size hint, into a buffer that fits most of them whole, it is one read for the
/// data and one for the end.
pub(super) fn read(path: &Path) -> Result<String, Error> {
    let mut text = String::with_capacity(16 * 1024);
    File::open(path)
        .and_then(|f| f.take(u64::MAX).read_to_string(&mut text))
        .map_err(|e| Error::io(path.display(), e))?;
    Ok(text)
}

/// Why a collector produced nothing (or only part) for this scrape.
#[derive(Debug)]
pub(super) enum Error {
    /// The source is missing or unreadable.
    Io { what: String, err: io::Error },
    /// The source was read but is not what the kernel writes.
    Parse(String),
    /// Writing the exposition failed: the whole scrape is lost, not just this collector.
    Encode(fmt::Error),
}

impl Error {
    pub fn io(what: impl fmt::Display, err: io::Error) -> Self {
        Error::Io {
            what: what.to_string(),
            err,
        }
    }

    pub fn parse(what: impl fmt::Display) -> Self {
        Error::Parse(what.to_string())
    }

    /// A missing source, which is normal on some kernels and worth less noise.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { err, .. } if err.kind() == io::ErrorKind::NotFound)
    }
}

impl From<fmt::Error> for Error {
    fn from(e: fmt::Error) -> Self {
        Error::Encode(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { what, err } => write!(f, "{what}: {err}"),
            Error::Parse(msg) => f.write_str(msg),
            Error::Encode(_) => f.write_str("writing the exposition failed"),
        }
    }
}

/// Parses one field, naming the file and line in the error.
pub(super) fn field<T: FromStr>(value: Option<&str>, file: &str, line: &str) -> Result<T, Error> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::parse(format!("{file}: bad line {line:?}")))
}
