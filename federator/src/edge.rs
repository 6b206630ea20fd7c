//! Talking to one edge: connections bounded by the round's timeout, export with the
//! delta logic, import, and the edge's federation state.

use std::time::Duration;

use edge_model::federation::{decode_update, Update};

/// One edge as given on the command line: `NAME=redis://host:port`.
#[derive(Debug, Clone)]
pub struct EdgeSpec {
    /// The name used in logs and the summary.
    pub name: String,
    /// Its Redis URL.
    pub url: String,
}

impl std::str::FromStr for EdgeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, url) = s
            .split_once('=')
            .ok_or_else(|| format!("--edge {s:?}: expected NAME=redis://host:port"))?;
        if name.is_empty() || !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(format!("--edge {s:?}: expected NAME=redis://host:port"));
        }
        Ok(EdgeSpec {
            name: name.to_owned(),
            url: url.to_owned(),
        })
    }
}

/// A connection whose connect, reads and writes each give up after `timeout`, so a dead or
/// hung edge costs a round at most that long.
pub fn connect(url: &str, timeout: Duration) -> Result<redis::Connection, String> {
    let client = redis::Client::open(url).map_err(|e| format!("bad URL {url}: {e}"))?;
    let con = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| format!("connect: {e}"))?;
    con.set_read_timeout(Some(timeout))
        .and_then(|()| con.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    Ok(con)
}

/// An export as received: the decoded update and its size on the wire.
#[derive(Debug, Clone)]
pub struct Received {
    /// The update.
    pub update: Update,
    /// Blob bytes.
    pub bytes: usize,
}

/// `EDGE.MODEL.EXPORT [SINCE since]`. An edge whose round went backwards (restored from an
/// older RDB, or flushed) cannot give a delta against what we hold: it is asked again for
/// everything.
pub fn export(con: &mut redis::Connection, since: Option<u64>) -> Result<Received, String> {
    let fetch = |con: &mut redis::Connection, since: Option<u64>| -> Result<Received, String> {
        let mut c = redis::cmd("EDGE.MODEL.EXPORT");
        if let Some(s) = since {
            c.arg("SINCE").arg(s);
        }
        let blob: Vec<u8> = c.query(con).map_err(|e| format!("EXPORT: {e}"))?;
        let update = decode_update(&blob).map_err(|e| format!("EXPORT blob: {e}"))?;
        Ok(Received {
            update,
            bytes: blob.len(),
        })
    };
    let r = fetch(con, since)?;
    match since {
        Some(s) if r.update.round <= s => fetch(con, None),
        _ => Ok(r),
    }
}

/// `EDGE.MODEL.IMPORT blob`: whether the edge applied it.
pub fn import(con: &mut redis::Connection, blob: &[u8]) -> Result<bool, String> {
    let applied: i64 = redis::cmd("EDGE.MODEL.IMPORT")
        .arg(blob)
        .query(con)
        .map_err(|e| format!("IMPORT: {e}"))?;
    Ok(applied == 1)
}

/// `EDGE.MODEL.INFO` as (field, value) pairs.
pub fn model_info(con: &mut redis::Connection) -> Result<Vec<(String, i64)>, String> {
    let flat: Vec<redis::Value> = redis::cmd("EDGE.MODEL.INFO")
        .query(con)
        .map_err(|e| format!("EDGE.MODEL.INFO: {e}"))?;
    flat.chunks(2)
        .map(|p| match p {
            [k, v] => Ok((
                redis::from_redis_value::<String>(k.clone()).map_err(|e| e.to_string())?,
                redis::from_redis_value::<i64>(v.clone()).map_err(|e| e.to_string())?,
            )),
            _ => Err("odd EDGE.MODEL.INFO reply".to_owned()),
        })
        .collect()
}
