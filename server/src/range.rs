//! `Range: bytes=…` requests (players seek with them).
//!
//! One range is served (`206` with `Content-Range`); a header this server does not
//! understand, or one asking for several ranges, is ignored and the whole object served,
//! as RFC 9110 allows. A range that starts past the end gets `416`.

/// What a `Range` header asks of an object of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The whole object.
    All,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// Nothing the object has: `416 Range Not Satisfiable`.
    Unsatisfiable,
}

/// Reads a `Range` header value against an object of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::All;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if len == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            None => Wanted::All,
        },
        (start, end) => {
            let Some(start) = num(start) else {
                return Wanted::All;
            };
            let end = if end.is_empty() {
                Some(u64::MAX)
            } else {
                num(end)
            };
            match end {
                None => Wanted::All,
                Some(end) if end < start => Wanted::All,
                Some(_) if start >= len => Wanted::Unsatisfiable,
                Some(end) => Wanted::Part {
                    start,
                    end: end.min(len - 1),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        let p = |h| parse(Some(h), 100);
        assert_eq!(p("bytes=0-9"), Wanted::Part { start: 0, end: 9 });
        assert_eq!(p("bytes=90-"), Wanted::Part { start: 90, end: 99 });
        assert_eq!(p("bytes=-10"), Wanted::Part { start: 90, end: 99 });
        assert_eq!(p("bytes=-1000"), Wanted::Part { start: 0, end: 99 });
        assert_eq!(p("bytes=50-1000"), Wanted::Part { start: 50, end: 99 });
        assert_eq!(p("bytes=100-"), Wanted::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Wanted::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-5"), 0), Wanted::Unsatisfiable);
    }

    #[test]
    fn what_is_not_understood_gets_the_whole_object() {
        for h in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=",
        ] {
            assert_eq!(parse(Some(h), 100), Wanted::All, "{h}");
        }
        assert_eq!(parse(None, 100), Wanted::All);
    }
}
