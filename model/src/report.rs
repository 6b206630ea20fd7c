//! What EDGE.USER shows about one viewer: built here, from the engine's state, so the
//! module only turns it into a reply.

use crate::engine::Engine;
use crate::user::UserState;

/// Personal transitions a report lists, strongest first.
pub const REPORT_TRANSITIONS: usize = 10;

/// A readable view of one viewer, in EDGE.USER's reply order.
#[derive(Debug, Clone, PartialEq)]
pub struct UserReport {
    /// Views recorded.
    pub records: u64,
    /// Timestamp of the first view (ms).
    pub first_seen_ms: i64,
    /// Timestamp of the latest view (ms), 0 without one.
    pub last_seen_ms: i64,
    /// The device of the latest view, if one was given.
    pub device: Option<String>,
    /// Distinct items remembered as seen.
    pub seen_items: u64,
    /// Recent views, latest first: item and timestamp.
    pub history: Vec<(String, i64)>,
    /// The strongest personal transitions (from, to, weight), at most
    /// [`REPORT_TRANSITIONS`]; an item the catalog no longer names shows as `#<fingerprint>`.
    pub transitions: Vec<(String, String, f64)>,
}

impl Engine {
    /// The report EDGE.USER replies with for `u`.
    pub fn user_report(&self, u: &UserState) -> UserReport {
        let catalog = self.catalog();
        let name_of = |fp: u64| {
            catalog
                .lookup_fp_only(fp)
                .and_then(|r| catalog.get(r))
                .map_or_else(|| format!("#{fp:016x}"), |i| i.name.to_string())
        };
        let mut personal: Vec<_> = u.personal().collect();
        personal.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        UserReport {
            records: u.records(),
            first_seen_ms: u.first_ts_ms(),
            last_seen_ms: u.last().map_or(0, |h| h.ts_ms),
            device: u.device().map(str::to_owned),
            seen_items: u.seen_len() as u64,
            history: u
                .history()
                .iter()
                .rev()
                .map(|h| (h.item.to_string(), h.ts_ms))
                .collect(),
            transitions: personal
                .iter()
                .take(REPORT_TRANSITIONS)
                .map(|t| (name_of(t.prev), name_of(t.next), f64::from(t.weight)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Engine, UserState, View};

    #[test]
    fn report_lists_history_latest_first_and_names_transitions() {
        let mut e = Engine::new(Config::default()).unwrap();
        let mut u = UserState::default();
        for (i, item) in ["a", "b", "a", "c"].iter().enumerate() {
            let view = View {
                item,
                ts_ms: 1000 * (i as i64 + 1),
                duration_s: None,
                device: Some("tv"),
            };
            e.record(&mut u, &view);
        }
        let r = e.user_report(&u);
        assert_eq!(r.records, 4);
        assert_eq!(r.first_seen_ms, 1000);
        assert_eq!(r.last_seen_ms, 4000);
        assert_eq!(r.device.as_deref(), Some("tv"));
        assert_eq!(r.seen_items, 3);
        let items: Vec<&str> = r.history.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(items, ["c", "a", "b", "a"]);
        assert!(!r.transitions.is_empty());
        assert!(r.transitions.windows(2).all(|w| w[0].2 >= w[1].2));
        assert!(r
            .transitions
            .iter()
            .all(|(p, n, _)| !p.starts_with('#') && !n.starts_with('#')));
    }
}
