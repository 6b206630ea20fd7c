//! An intrusive doubly linked list over slab indices: O(1) push, unlink and pop without
//! per-node allocation, the backbone of every recency-ordered segment.

/// Sentinel for "no node".
pub const NIL: u32 = u32::MAX;

/// Links of one node, stored inside the slab entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    /// Towards the head (older).
    pub prev: u32,
    /// Towards the tail (newer).
    pub next: u32,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            prev: NIL,
            next: NIL,
        }
    }
}

/// A list whose nodes live in a caller-owned slab; the caller passes link accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct List {
    /// Oldest node.
    pub head: u32,
    /// Newest node.
    pub tail: u32,
    /// Nodes in the list.
    pub len: usize,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

/// Access to the links of slab nodes.
pub trait Slab {
    /// The links of node `i`.
    fn links(&mut self, i: u32) -> &mut Links;
}

impl List {
    /// Appends `i` as the newest node.
    pub fn push_tail<S: Slab>(&mut self, slab: &mut S, i: u32) {
        *slab.links(i) = Links {
            prev: self.tail,
            next: NIL,
        };
        if self.tail == NIL {
            self.head = i;
        } else {
            slab.links(self.tail).next = i;
        }
        self.tail = i;
        self.len += 1;
    }

    /// Removes `i`, which must be in this list.
    pub fn unlink<S: Slab>(&mut self, slab: &mut S, i: u32) {
        let Links { prev, next } = *slab.links(i);
        if prev == NIL {
            self.head = next;
        } else {
            slab.links(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            slab.links(next).prev = prev;
        }
        *slab.links(i) = Links::default();
        self.len -= 1;
    }
}
