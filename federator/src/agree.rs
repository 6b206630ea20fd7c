//! What the edges of one round must agree on before their counts are summed, and, under
//! differential privacy, what their reports must say for the noise to cover them.
//!
//! Every export carries the learning settings it was made under
//! ([`edge_model::federation::LearnSettings`]) and its rows' half-life. A sum of counts
//! learned under different windows, decays or half-lives means nothing, and noise sized for
//! one edge's settings under-protects another's viewers, so a round whose contributing
//! edges disagree is refused (logged, nothing pushed) rather than summed. Under DP every
//! contributor must also report its settings, run the privacy clip no looser than
//! `--dp-clip`, and keep counts undecayed (the sensitivity bound assumes plain counts).

use crate::tables::EdgeTables;
use edge_model::federation::LearnSettings;

/// Why a round was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Two contributing edges learn under different settings.
    Disagree {
        /// The first edge, and what it reported.
        first: (String, String),
        /// The edge that differs, and what it reported.
        other: (String, String),
    },
    /// Under DP, an edge's export does not say what it learned under (an older module).
    Unreported(String),
    /// Under DP, an edge's rows decay (the sensitivity bound assumes plain counts).
    Decaying {
        /// The edge.
        edge: String,
        /// Its rows' half-life (ms).
        half_life_ms: u64,
    },
    /// Under DP, an edge clips looser than the federator's `--dp-clip` (0: not at all).
    ClipAbove {
        /// The edge.
        edge: String,
        /// Its `dp-clip`.
        have: u32,
        /// `--dp-clip`.
        want: u32,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Disagree { first, other } => write!(
                f,
                "edges learn under different settings: {} has {}, {} has {}; set the same \
                 learn-window, learn-decay, reverse-weight, simultaneous-ms, half-life-secs \
                 and dp-clip on every edge",
                first.0, first.1, other.0, other.1
            ),
            Refusal::Unreported(e) => write!(
                f,
                "edge {e} does not report its learning settings (an older module): DP noise \
                 cannot be sized for it; upgrade the edge"
            ),
            Refusal::Decaying { edge, half_life_ms } => write!(
                f,
                "edge {edge} has half-life-secs {} : the DP bound assumes undecayed counts; \
                 set half-life-secs 0",
                half_life_ms / 1000
            ),
            Refusal::ClipAbove { edge, have, want } => write!(
                f,
                "edge {edge} has dp-clip {have} but --dp-clip is {want}: the DP guarantee \
                 needs every edge to clip at 1..={want}"
            ),
        }
    }
}

/// One edge's settings as the log names them.
fn describe(s: Option<&LearnSettings>, half_life_ms: u64) -> String {
    match s {
        None => format!("unreported settings, half-life {half_life_ms} ms"),
        Some(s) => {
            let l = &s.learning;
            format!(
                "learn-window {} learn-decay {} reverse-weight {} simultaneous-ms {} \
                 group-inner {} admission {} dp-clip {} half-life {half_life_ms} ms",
                l.window,
                l.decay,
                l.reverse,
                l.simultaneous_ms,
                l.group_inner,
                l.admission,
                s.dp_clip
            )
        }
    }
}

/// Checks the contributing edges (name, latest tables) agree, and under DP (`dp_clip`:
/// `--dp-clip`) that they qualify. Returns the settings they share, if any reported them.
/// Edges that report nothing (older modules) are summed with the rest outside DP.
pub fn agreed<'a>(
    edges: impl IntoIterator<Item = (&'a str, &'a EdgeTables)>,
    dp_clip: Option<u32>,
) -> Result<Option<LearnSettings>, Refusal> {
    let mut first: Option<(&str, &EdgeTables)> = None;
    let mut shared = None;
    for (name, t) in edges {
        if let Some(want) = dp_clip {
            let Some(s) = &t.settings else {
                return Err(Refusal::Unreported(name.to_owned()));
            };
            if t.rows_clock.half_life_ms != 0 {
                return Err(Refusal::Decaying {
                    edge: name.to_owned(),
                    half_life_ms: t.rows_clock.half_life_ms,
                });
            }
            if s.dp_clip == 0 || s.dp_clip > want {
                return Err(Refusal::ClipAbove {
                    edge: name.to_owned(),
                    have: s.dp_clip,
                    want,
                });
            }
        }
        match first {
            None => first = Some((name, t)),
            Some((n0, t0)) => {
                let differs = t0.rows_clock.half_life_ms != t.rows_clock.half_life_ms
                    || matches!((&t0.settings, &t.settings), (Some(a), Some(b)) if a != b);
                if differs {
                    let d =
                        |t: &EdgeTables| describe(t.settings.as_ref(), t.rows_clock.half_life_ms);
                    return Err(Refusal::Disagree {
                        first: (n0.to_owned(), d(t0)),
                        other: (name.to_owned(), d(t)),
                    });
                }
            }
        }
        shared = shared.or(t.settings);
    }
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(window: usize, clip: u32, half_life_ms: u64) -> EdgeTables {
        let c = edge_model::Config {
            dp_clip: clip,
            learning: edge_model::config::Learning {
                window,
                ..edge_model::Config::default().learning
            },
            ..edge_model::Config::default()
        };
        let mut t = EdgeTables {
            round: Some(1),
            settings: Some(LearnSettings::of(&c)),
            ..EdgeTables::default()
        };
        t.rows_clock.half_life_ms = half_life_ms;
        t
    }

    #[test]
    fn edges_must_agree_and_qualify_for_dp() {
        let (a, b) = (edge(10, 5, 0), edge(10, 5, 0));
        let got = agreed([("a", &a), ("b", &b)], Some(5)).unwrap().unwrap();
        assert_eq!((got.learning.window, got.dp_clip), (10, 5));
        let wide = edge(20, 5, 0);
        let r = agreed([("a", &a), ("w", &wide)], None).unwrap_err();
        assert!(matches!(&r, Refusal::Disagree { other, .. } if other.0 == "w"));
        assert!(r.to_string().contains("learn-window 20"), "{r}");
        assert_eq!(
            agreed([("a", &a), ("d", &edge(10, 5, 1000))], None).map(|_| ()),
            Err(Refusal::Disagree {
                first: ("a".into(), describe(a.settings.as_ref(), 0)),
                other: ("d".into(), describe(a.settings.as_ref(), 1000)),
            })
        );
        assert!(matches!(
            agreed([("a", &a)], Some(4)),
            Err(Refusal::ClipAbove {
                have: 5,
                want: 4,
                ..
            })
        ));
        assert!(matches!(
            agreed([("z", &edge(10, 0, 0))], Some(4)),
            Err(Refusal::ClipAbove { have: 0, .. })
        ));
        assert!(matches!(
            agreed([("h", &edge(10, 5, 1000))], Some(5)),
            Err(Refusal::Decaying { .. })
        ));
        let old = EdgeTables {
            round: Some(1),
            ..EdgeTables::default()
        };
        assert_eq!(agreed([("a", &a), ("o", &old)], None), Ok(a.settings));
        assert_eq!(
            agreed([("o", &old)], Some(5)),
            Err(Refusal::Unreported("o".into()))
        );
    }
}
