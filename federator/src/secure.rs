//! Secure aggregation: pairwise additive masks mod 2^32 over fixed-point counts.
//!
//! Every pair of edge agents `(i, j)` shares a secret seed. For a round, both expand it into
//! the same pseudo-random vector `m_ij` (ChaCha12, keyed by the seed and the round); agent
//! `i` adds `m_ij` for every `j > i` and subtracts it for every `j < i`. Each masked vector
//! on its own is uniformly random to the aggregator; in the sum of all of them every mask
//! appears once with `+` and once with `−`, so the aggregator gets exactly `Σ x_i mod 2^32`.
//!
//! **Where this runs.** Two ways. With `federator agent` beside each edge
//! ([`crate::agent`], [`crate::remote`]), each agent is its own process holding its edge's
//! tables and its x25519 key; pairwise seeds come from key agreement ([`pair_seed`]) and
//! the aggregator process receives only masked vectors. With `--secure` the masking runs in
//! the federator process, in [`Agent`], standing in for those agents ([`pairwise_seeds`]);
//! the [`aggregate`] function is the only code that plays the aggregator and receives only
//! masked vectors, but the two share a process, so that mode shows the protocol, not an
//! isolation boundary.
//!
//! **Threat model.** Honest-but-curious aggregator; agents follow the protocol. Any two
//! colluding agents learn nothing about a third beyond the sum; the aggregator colluding
//! with `k` agents learns the sum of the others. Not covered: a malicious aggregator that
//! lies about who answered (it could isolate one edge by declaring all others dropped — a
//! real deployment needs a minimum set size, which `--min-edges` gives), malicious agents
//! that send garbage, and the support: coordinates are indexed by item and pair names, so
//! which items and pairs exist is revealed (only their counts are hidden).
//!
//! **Dropouts.** An edge that does not answer a round would leave its masks uncancelled.
//! The round is therefore two-phase: first the set of answering edges is fixed, then only
//! they mask, with each other (re-masking among the answering edges). A dropped edge's
//! table is then simply absent from that round's sum: its peers lose its evidence until it
//! answers again, unlike plain aggregation, which keeps its last known table.
//!
//! Fixed point: each kind of count (views, popularity, row totals, links) gets the largest
//! power-of-two scale up to 2^16 at which `edges ×` its largest value fits in 32 bits, so
//! the sum never wraps; small counts are exact to at least 1/256 (see [`scales`]).

use rand::{Rng, SeedableRng};

use crate::flat::{Flat, Key};

/// Fixed-point scale of masked counts.
pub const SCALE: f64 = 256.0;

/// An edge-side agent: its index, its pairwise seeds, and what it contributes.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Its edge's index.
    pub index: usize,
    /// Seeds shared with every other agent (by index), from key agreement.
    pub seeds: Vec<[u8; 32]>,
}

/// Pairwise seeds for `n` agents: `seeds[i][j] == seeds[j][i]`. For the in-process
/// `--secure` mode and the evaluation, where all agents share a process; agents in their own
/// processes derive them with [`pair_seed`] instead.
pub fn pairwise_seeds(n: usize, rng: &mut impl Rng) -> Vec<Vec<[u8; 32]>> {
    let mut s = vec![vec![[0u8; 32]; n]; n];
    for (i, j) in (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))) {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        s[i][j] = k;
        s[j][i] = k;
    }
    s
}

fn mask_stream(seed: &[u8; 32], round: u64) -> rand::rngs::StdRng {
    let mut key = *seed;
    for (b, r) in key.iter_mut().zip(round.to_le_bytes()) {
        *b ^= r;
    }
    rand::rngs::StdRng::from_seed(key)
}

/// Fixed-point scales, one per kind of count (views, popularity, totals, links): the
/// largest power of two up to [`SCALE`]·2^8 at which `edges` times the largest value of
/// that kind still fits in 32 bits. Agents agree on them from each kind's maximum, which
/// is revealed (a magnitude, not a count of anyone in particular).
pub type Scales = [f64; 4];

fn kind(k: &Key) -> usize {
    match k {
        Key::Views(_) => 0,
        Key::Popularity(_) => 1,
        Key::Total(_) => 2,
        Key::Link(..) => 3,
    }
}

/// The largest value of each kind of count in `f` (what an agent reveals to set the
/// scales: a magnitude, not anyone's count in particular).
pub fn maxima(f: &Flat) -> [f64; 4] {
    let mut max = [0.0f64; 4];
    for (k, v) in f {
        let m = &mut max[kind(k)];
        *m = m.max(*v);
    }
    max
}

/// The scales for `parts` (see [`Scales`]).
pub fn scales<'a>(parts: impl IntoIterator<Item = &'a Flat>, edges: usize) -> Scales {
    let mut max = [0.0f64; 4];
    for f in parts {
        for (m, v) in max.iter_mut().zip(maxima(f)) {
            *m = m.max(v);
        }
    }
    scales_for(max, edges)
}

/// The scales at which `edges` tables whose kinds peak at `max` sum without wrapping.
pub fn scales_for(max: [f64; 4], edges: usize) -> Scales {
    let room = (u32::MAX as f64) / edges.max(1) as f64;
    max.map(|m| {
        let mut s = SCALE * 256.0;
        while s > 1.0 / 1024.0 && (m * s).round() >= room {
            s /= 2.0;
        }
        s
    })
}

/// The pairwise mask seed of two agents from an x25519 key agreement: the shared secret
/// through HKDF-SHA256, bound to both public keys (in a fixed order, so both sides derive
/// the same seed). The aggregator only relays public keys and never learns the seed.
/// Refuses a peer key of low order (whose shared secret would be known to anyone).
pub fn pair_seed(
    secret: &x25519_dalek::StaticSecret,
    theirs: &[u8; 32],
) -> Result<[u8; 32], String> {
    let mine = x25519_dalek::PublicKey::from(secret).to_bytes();
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*theirs));
    if !shared.was_contributory() {
        return Err("a peer public key of low order: refused".to_owned());
    }
    let (a, b) = if mine <= *theirs {
        (mine, *theirs)
    } else {
        (*theirs, mine)
    };
    let mut info = [0u8; 64];
    info[..32].copy_from_slice(&a);
    info[32..].copy_from_slice(&b);
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(
        Some(b"edgecache secure aggregation v1"),
        shared.as_bytes(),
    );
    let mut seed = [0u8; 32];
    hk.expand(&info, &mut seed)
        .map_err(|e| format!("HKDF: {e}"))?;
    Ok(seed)
}

/// Fixed-point encoding of `x` over the coordinates `index`.
pub fn encode(x: &Flat, index: &[Key], s: &Scales) -> Result<Vec<u32>, String> {
    index
        .iter()
        .map(|k| {
            let v = (x.get(k).copied().unwrap_or(0.0).max(0.0) * s[kind(k)]).round();
            if v > f64::from(u32::MAX) {
                Err(format!("count {k:?} is too large for 32-bit fixed point"))
            } else {
                Ok(v as u32)
            }
        })
        .collect()
}

impl Agent {
    /// The masked vector this agent sends for `round`, among the answering agents `set`.
    pub fn mask(&self, x: &[u32], set: &[usize], round: u64) -> Vec<u32> {
        let mut out = x.to_vec();
        for &j in set {
            if j == self.index {
                continue;
            }
            let mut s = mask_stream(&self.seeds[j], round);
            let add = self.index < j;
            for v in out.iter_mut() {
                let m = s.next_u32();
                *v = if add {
                    v.wrapping_add(m)
                } else {
                    v.wrapping_sub(m)
                };
            }
        }
        out
    }

    /// What this agent's edge imports: the unmasked sum minus its own contribution.
    pub fn others(&self, sum: &[u32], own: &[u32]) -> Vec<u32> {
        minus(sum, own)
    }
}

/// `sum − own` mod 2^32: the others' total, for an agent that knows its own contribution.
pub fn minus(sum: &[u32], own: &[u32]) -> Vec<u32> {
    sum.iter()
        .zip(own)
        .map(|(s, o)| s.wrapping_sub(*o))
        .collect()
}

/// The aggregator's whole job: the sum of masked vectors, mod 2^32.
pub fn aggregate(masked: &[Vec<u32>]) -> Vec<u32> {
    let n = masked.first().map_or(0, Vec::len);
    let mut sum = vec![0u32; n];
    for m in masked {
        for (s, v) in sum.iter_mut().zip(m) {
            *s = s.wrapping_add(*v);
        }
    }
    sum
}

/// Decodes a fixed-point vector over `index`.
pub fn decode(v: &[u32], index: &[Key], s: &Scales) -> Flat {
    index
        .iter()
        .zip(v)
        .filter(|(_, x)| **x != 0)
        .map(|(k, x)| (k.clone(), f64::from(*x) / s[kind(k)]))
        .collect()
}

/// The union of the coordinates of `parts`, sorted: the index every agent encodes over
/// (it reveals the support, see the module notes).
pub fn index_of<'a>(parts: impl IntoIterator<Item = &'a Flat>) -> Vec<Key> {
    let mut keys: Vec<Key> = parts.into_iter().flat_map(|f| f.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Runs one secure round over `parts` (agent index, its flat tables): returns the sum the
/// aggregator learns and, per agent, the others' sum it hands its edge.
pub fn secure_round(
    agents: &[Agent],
    parts: &[(usize, Flat)],
    round: u64,
) -> Result<(Flat, Vec<(usize, Flat)>), String> {
    let index = index_of(parts.iter().map(|(_, f)| f));
    let sc = scales(parts.iter().map(|(_, f)| f), parts.len());
    let set: Vec<usize> = parts.iter().map(|(i, _)| *i).collect();
    let own: Vec<Vec<u32>> = parts
        .iter()
        .map(|(_, f)| encode(f, &index, &sc))
        .collect::<Result<_, _>>()?;
    let masked: Vec<Vec<u32>> = parts
        .iter()
        .zip(&own)
        .map(|((i, _), x)| agents[*i].mask(x, &set, round))
        .collect();
    let sum = aggregate(&masked);
    let others = parts
        .iter()
        .zip(&own)
        .map(|((i, _), x)| (*i, decode(&agents[*i].others(&sum, x), &index, &sc)))
        .collect();
    Ok((decode(&sum, &index, &sc), others))
}

/// Agents for `n` edges with fresh pairwise seeds.
pub fn agents(n: usize, rng: &mut impl Rng) -> Vec<Agent> {
    pairwise_seeds(n, rng)
        .into_iter()
        .enumerate()
        .map(|(index, seeds)| Agent { index, seeds })
        .collect()
}
