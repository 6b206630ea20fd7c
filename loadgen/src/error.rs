//! The errors `loadgen` reports. Each message says what went wrong and what to do about it,
//! because these reach a person at a terminal, not a program.

use std::fmt;
use std::path::PathBuf;

/// Everything that can stop a subcommand.
#[derive(Debug)]
pub enum Error {
    /// An input or output file could not be opened, read or written.
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line of an input log could not be parsed and `--strict` was given.
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// The server refused a command or the connection failed.
    Redis {
        /// What loadgen was doing at the time.
        context: String,
        /// The client's error.
        source: redis::RedisError,
    },
    /// The server answered with something loadgen did not expect (for example the module
    /// is not loaded, or is a different version).
    Protocol(String),
    /// Some commands of a run were not applied (or applied out of order); the run went on
    /// and its report lists the errors.
    NotApplied {
        /// The run (replay, simulate…).
        what: String,
        /// Commands that failed.
        failed: u64,
        /// Commands sent.
        sent: u64,
        /// Counts per kind, as text.
        kinds: String,
        /// The first error's text.
        first: String,
    },
    /// Too many lines of an input log were malformed (all of them, or more than
    /// `--max-malformed`): most likely the file is in another format than `--format` says,
    /// and a table of zeros would hide that.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The format it was read as, with its layout.
        format: &'static str,
        /// Malformed lines.
        malformed: u64,
        /// Non-blank data lines read (events plus malformed lines).
        lines: u64,
        /// The share of malformed lines accepted.
        max_share: f64,
        /// The first malformed line: its number and why it was rejected.
        first: Option<(u64, String)>,
    },
    /// A server URL that the client cannot use.
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server answers but does not have the edgecache module loaded: every EDGE.*
    /// command would fail, so the run stops before sending any.
    NoModule {
        /// The server's URL.
        url: String,
    },
    /// Command-line values that cannot work together.
    Usage(String),
    /// The model refused a configuration.
    Config(String),
}

impl Error {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a client error with what was being done.
    pub fn redis(context: impl Into<String>, source: redis::RedisError) -> Self {
        Error::Redis {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(
                f,
                "{}: {source} (check the path and its permissions)",
                path.display()
            ),
            Error::Malformed { path, line, reason } => write!(
                f,
                "{}:{line}: {reason} (drop --strict to skip malformed lines and count them)",
                path.display()
            ),
            Error::Redis { context, source } => {
                let hint = if source.is_connection_refusal() || source.is_io_error() {
                    " (is redis-server running at that URL?)"
                } else if source.to_string().contains("unknown command") {
                    " (is the edgecache module loaded? start redis-server with --loadmodule path/to/libedgecache.so)"
                } else {
                    ""
                };
                write!(f, "{context}: {source}{hint}")
            }
            Error::Protocol(m) => write!(f, "unexpected reply from the server: {m}"),
            Error::NotApplied {
                what,
                failed,
                sent,
                kinds,
                first,
            } => write!(
                f,
                "{what}: {failed} of {sent} commands were not applied in order ({kinds}); \
                 first: {first}. The server lacks those views or has them out of order: \
                 fix the cause and replay into a flushed server"
            ),
            Error::Unreadable {
                path,
                format,
                malformed,
                lines,
                max_share,
                first,
            } => {
                write!(
                    f,
                    "{}: {malformed} of {lines} lines are malformed when read as {format}",
                    path.display()
                )?;
                if let Some((line, reason)) = first {
                    write!(f, "; the first is line {line}: {reason}")?;
                }
                if malformed == lines {
                    write!(f, ". No event could be read: is the file in another format? Pass --format jsonl, movielens or csv")
                } else {
                    write!(
                        f,
                        ". More than {:.1} % malformed usually means the wrong --format (jsonl, movielens or csv); \
                         to accept the rest anyway, raise --max-malformed (a share, 0 to 1)",
                        max_share * 100.0
                    )
                }
            }
            Error::BadUrl { url, reason } => write!(
                f,
                "{url:?} is not a server URL ({reason}): write redis://host:port (for example \
                 redis://127.0.0.1:6379, with redis://user:password@host:port/db for a password \
                 and database), redis+unix:///path/to/redis.sock for a Unix socket, or \
                 redis+cluster://host:port,host:port for a Redis Cluster"
            ),
            Error::NoModule { url } => write!(
                f,
                "the server at {url} does not have the edgecache module loaded (it does not know \
                 EDGE.PLAY): start it with redis-server --loadmodule /path/to/libedgecache.so \
                 (built by cargo build --release -p edge-module into target/release/), or load it \
                 into the running server with MODULE LOAD /path/to/libedgecache.so"
            ),
            Error::Usage(m) => write!(f, "{m} (see --help)"),
            Error::Config(m) => write!(f, "invalid engine setting: {m}"),
        }
    }
}

impl Error {
    /// Whether this is a write to a closed pipe (`loadgen … | head`): the reader has all it
    /// wanted, so `main` exits quietly and successfully, as ripgrep does.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Redis { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The outcome of a scoped fan-out whose worker threads push their errors into a shared
/// list: `Err` with the first error pushed, `Ok` if there was none. Kept here so that
/// `bench` and `eval`, which both run workers this way, report a failed run the same way.
pub fn first_error(errors: std::sync::Mutex<Vec<Error>>) -> Result<()> {
    match errors
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .next()
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
