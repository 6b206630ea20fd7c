//! The origin: where the edge fetches what it does not hold.
//!
//! Either a base URL (`http://host:port/path`, the item id appended as one path segment)
//! or a local directory of files named by item id. An object is read as it arrives
//! ([`Origin::open`]); the edge bounds each fetch by a deadline and checks its length, so
//! nothing half-fetched ever reaches the store.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

/// Why the origin could not give an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginError {
    /// The origin has no such item (404, or no such file).
    NotFound,
    /// The origin did not answer within the deadline.
    Timeout,
    /// The origin answered with an error status, refused the connection, or sent a body
    /// that could not be read; the text says which.
    Failed(String),
    /// The object is larger than the edge accepts ([`Origin::max_object_bytes`]).
    TooLarge(u64),
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginError::NotFound => write!(f, "the origin has no such item"),
            OriginError::Timeout => write!(f, "the origin did not answer in time"),
            OriginError::Failed(why) => write!(f, "the origin failed: {why}"),
            OriginError::TooLarge(n) => {
                write!(f, "the object is too large for this edge ({n} bytes)")
            }
        }
    }
}

impl std::error::Error for OriginError {}

/// Where content comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An HTTP base URL; the item id is appended as a path segment.
    Http(Uri),
    /// A directory of files named by item id.
    Dir(PathBuf),
}

impl Source {
    /// Reads `--origin`: a URL starting with `http://`, or a directory that exists.
    pub fn parse(s: &str) -> Result<Source, String> {
        if s.starts_with("http://") {
            let uri: Uri = s
                .trim_end_matches('/')
                .parse()
                .map_err(|e| format!("--origin {s:?} is not a URL: {e}"))?;
            if uri.host().is_none() {
                return Err(format!("--origin {s:?} names no host"));
            }
            Ok(Source::Http(uri))
        } else if s.contains("://") {
            Err(format!(
                "--origin {s:?}: only http:// URLs and directories are supported"
            ))
        } else {
            let p = PathBuf::from(s);
            if !p.is_dir() {
                return Err(format!(
                    "--origin {s:?} is neither an http:// URL nor a directory"
                ));
            }
            Ok(Source::Dir(p))
        }
    }
}

/// The origin with its limits.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Where content comes from.
    pub source: Source,
    /// Deadline of one fetch, connection to last byte.
    pub timeout: Duration,
    /// Largest object fetched; larger ones are refused rather than buffered.
    pub max_object_bytes: u64,
}

/// True if `item` is safe as a file name and a URL path segment: item ids are the
/// module's (1 to 1024 bytes of UTF-8), and here also free of path separators, `..`,
/// control characters and characters a URL would need escaped.
pub fn valid_item(item: &str) -> bool {
    !item.is_empty()
        && item.len() <= 1024
        && item != "."
        && item != ".."
        && item.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'@')
        })
}

impl Origin {
    /// The size of `item` in bytes, as the origin reports it (a file's length, or an HTTP
    /// `HEAD`'s `Content-Length`), so the module can account for it before the bytes move.
    pub async fn size(&self, item: &str) -> Result<u64, OriginError> {
        match &self.source {
            Source::Dir(dir) => {
                let meta = tokio::time::timeout(self.timeout, tokio::fs::metadata(dir.join(item)))
                    .await
                    .map_err(|_| OriginError::Timeout)?;
                match meta {
                    Ok(m) if m.is_file() => Ok(m.len()),
                    Ok(_) => Err(OriginError::NotFound),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Err(OriginError::NotFound)
                    }
                    Err(e) => Err(OriginError::Failed(e.to_string())),
                }
            }
            Source::Http(base) => {
                let (status, headers, _) = self.request(base, item, Method::HEAD).await?;
                check(status)?;
                content_length(&headers)
                    .ok_or_else(|| OriginError::Failed("HEAD gave no Content-Length".into()))
            }
        }
    }

    /// The first `limit` item ids of a directory origin in name order (files whose names
    /// are valid item ids), for the viewer's page; `None` for an HTTP origin, which has no
    /// listing.
    pub async fn list(&self, limit: usize) -> Option<Result<Vec<String>, OriginError>> {
        let Source::Dir(dir) = &self.source else {
            return None;
        };
        let dir = dir.clone();
        let listing = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            // The `limit` first names, kept as they stream by: a directory of millions of
            // files costs one pass and `limit` names of memory.
            let mut first = std::collections::BTreeSet::new();
            for entry in std::fs::read_dir(&dir)?.filter_map(Result::ok) {
                if !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if valid_item(&name) {
                    first.insert(name);
                    if first.len() > limit {
                        first.pop_last();
                    }
                }
            }
            let names: Vec<String> = first.into_iter().collect();
            Ok(names)
        });
        Some(match tokio::time::timeout(self.timeout, listing).await {
            Err(_) => Err(OriginError::Timeout),
            Ok(Err(e)) => Err(OriginError::Failed(e.to_string())),
            Ok(Ok(Err(e))) => Err(OriginError::Failed(e.to_string())),
            Ok(Ok(Ok(names))) => Ok(names),
        })
    }

    /// Opens `item` for reading: the object's length if the origin gives it (a file's
    /// length, an HTTP `Content-Length`) and its bytes as they arrive. The caller bounds
    /// the whole read by [`Origin::timeout`] and checks the length at the end.
    pub async fn open(&self, item: &str) -> Result<(Option<u64>, Chunks), OriginError> {
        match &self.source {
            Source::Dir(dir) => {
                let file = match tokio::fs::File::open(dir.join(item)).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(OriginError::NotFound)
                    }
                    Err(e) => return Err(OriginError::Failed(e.to_string())),
                };
                let meta = file
                    .metadata()
                    .await
                    .map_err(|e| OriginError::Failed(e.to_string()))?;
                if !meta.is_file() {
                    return Err(OriginError::NotFound);
                }
                self.fits(meta.len())?;
                Ok((Some(meta.len()), Chunks::File(file)))
            }
            Source::Http(base) => {
                let (resp, driver) = self.send(base, item, Method::GET).await?;
                check(resp.status())?;
                let len = content_length(resp.headers());
                if let Some(n) = len {
                    self.fits(n)?;
                }
                Ok((len, Chunks::Http(resp.into_body(), driver)))
            }
        }
    }

    fn fits(&self, len: u64) -> Result<(), OriginError> {
        if len > self.max_object_bytes {
            Err(OriginError::TooLarge(len))
        } else {
            Ok(())
        }
    }

    /// One request to an HTTP origin on a connection of its own, whole body read, all
    /// within the deadline.
    async fn request(
        &self,
        base: &Uri,
        item: &str,
        method: Method,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), OriginError> {
        let work = async {
            let (resp, driver) = self.send(base, item, method).await?;
            let (parts, body) = resp.into_parts();
            let limit = usize::try_from(self.max_object_bytes).unwrap_or(usize::MAX);
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        OriginError::TooLarge(self.max_object_bytes)
                    } else {
                        OriginError::Failed(format!("reading the body: {e}"))
                    }
                })?
                .to_bytes();
            driver.abort();
            Ok((parts.status, parts.headers, body))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| OriginError::Timeout)?
    }

    /// Sends one request on a connection of its own; the response's head, and the task
    /// driving the connection (aborted when the body is done with).
    async fn send(
        &self,
        base: &Uri,
        item: &str,
        method: Method,
    ) -> Result<(hyper::Response<Incoming>, tokio::task::JoinHandle<()>), OriginError> {
        let host = base.host().unwrap_or("127.0.0.1");
        let port = base.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| OriginError::Failed(format!("connect to {host}:{port}: {e}")))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| OriginError::Failed(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = format!("{}/{item}", base.path().trim_end_matches('/'));
        let authority = base.authority().map_or(host.to_owned(), |a| a.to_string());
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| OriginError::Failed(e.to_string()))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| OriginError::Failed(e.to_string()))?;
        Ok((resp, driver))
    }
}

fn content_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
}

/// An object's bytes as they come from the origin.
#[derive(Debug)]
pub enum Chunks {
    /// From a file, in reads of [`CHUNK_BYTES`].
    File(tokio::fs::File),
    /// From an HTTP response body, and the task driving its connection.
    Http(Incoming, tokio::task::JoinHandle<()>),
}

/// Size of one read from a directory origin.
pub const CHUNK_BYTES: usize = 64 * 1024;

impl Chunks {
    /// The next chunk of bytes, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, OriginError>> {
        match self {
            Chunks::File(f) => {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0; CHUNK_BYTES];
                match f.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some(Ok(Bytes::from(buf)))
                    }
                    Err(e) => Some(Err(OriginError::Failed(format!("reading: {e}")))),
                }
            }
            Chunks::Http(body, _) => loop {
                match body.frame().await? {
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data() {
                            if !data.is_empty() {
                                return Some(Ok(data));
                            }
                        }
                    }
                    Err(e) => {
                        return Some(Err(OriginError::Failed(format!("reading the body: {e}"))))
                    }
                }
            },
        }
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        if let Chunks::Http(_, driver) = self {
            driver.abort();
        }
    }
}

fn check(status: StatusCode) -> Result<(), OriginError> {
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::NOT_FOUND => Err(OriginError::NotFound),
        s => Err(OriginError::Failed(format!("status {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_are_safe_path_segments() {
        for ok in ["C1", "movie-12_3.mp4", "a:b@c~d"] {
            assert!(valid_item(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a b",
            "a%2f",
            "é",
            &"x".repeat(1025),
        ] {
            assert!(!valid_item(bad), "{bad}");
        }
    }

    #[test]
    fn origins_parse_strictly() {
        assert!(matches!(
            Source::parse("http://127.0.0.1:8080/c/"),
            Ok(Source::Http(_))
        ));
        assert!(Source::parse("https://example.invalid/").is_err());
        assert!(Source::parse("/definitely/not/here").is_err());
        assert!(matches!(Source::parse("."), Ok(Source::Dir(_))));
    }
}
