//! The federator: federated learning between edgecache edges.
//!
//! Each round it collects every edge's model update (`EDGE.MODEL.EXPORT SINCE <last
//! received>`), keeps a copy of each edge's tables, sums them and pushes every edge the
//! aggregate of the *other* edges (`EDGE.MODEL.IMPORT`). Only these aggregate counts travel;
//! viewing logs and per-user tables never leave an edge.
//!
//! - [`aggregate`]: the aggregation step (plain, DP, secure), shared by the live federator
//!   and the in-process evaluation.
//! - [`agree`]: what the edges of a round must agree on (their reported learning
//!   settings) and what DP needs of them.
//! - [`tables`]: each edge's tables kept current from its deltas, and their sum.
//! - [`flat`], [`dp`], [`secure`]: named count vectors, Laplace noise with its sensitivity,
//!   pairwise masking.
//! - [`edge`] and [`run`]: talking to edges, rounds with deadlines, logs and the JSON
//!   summary.
//! - [`agent`], [`remote`], [`wire`]: secure aggregation across processes: the agent beside
//!   each edge, the aggregator that receives only masked vectors, and their protocol.
//! - [`eval`]: local-only vs federated vs centralized on a real log split by region.

pub mod agent;
pub mod aggregate;
pub mod agree;
pub mod dp;
pub mod edge;
pub mod eval;
pub mod flat;
pub mod remote;
pub mod run;
pub mod secure;
pub mod tables;
pub mod wire;
