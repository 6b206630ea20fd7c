//! What a node learns from its viewers' views.
//!
//! - [`row`]: one item's bounded successor row (Space-Saving with an admission rule), the
//!   unit every other part reads and writes;
//! - [`transitions`]: the table of rows, one per catalog slot, with links buffered and
//!   applied in row order, on a thread of their own when `learner-thread` is on;
//! - [`node`]: the node's model around it: catalog, decay clocks, the popularity board and
//!   what peers taught ([`node::Peers`]).
//!
//! A viewer's own state lives apart in [`crate::user`]: it moves with its key between
//! cluster nodes, while everything here stays with the node.

pub mod node;
pub mod row;
pub mod transitions;

pub use node::NodeModel;
pub use row::{Entry, Row, Val};
pub use transitions::Transitions;
