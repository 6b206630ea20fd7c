//! An intrusive doubly linked list over dense item indices: O(1) push, remove and pop, no
//! allocation per operation. The recency lists of LRU, ARC and W-TinyLFU are all this.

const NIL: u32 = u32::MAX;

/// A recency list: front = most recently used, back = least.
#[derive(Debug, Clone)]
pub struct DList {
    prev: Vec<u32>,
    next: Vec<u32>,
    member: Vec<bool>,
    head: u32,
    tail: u32,
    len: usize,
}

impl DList {
    /// An empty list over items `0..n`.
    pub fn new(n: usize) -> Self {
        DList {
            prev: vec![NIL; n],
            next: vec![NIL; n],
            member: vec![false; n],
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    /// Whether `i` is in the list.
    pub fn contains(&self, i: u32) -> bool {
        self.member[i as usize]
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Moves or inserts `i` at the front (most recent).
    pub fn push_front(&mut self, i: u32) {
        self.remove(i);
        let u = i as usize;
        self.member[u] = true;
        self.prev[u] = NIL;
        self.next[u] = self.head;
        if self.head != NIL {
            self.prev[self.head as usize] = i;
        } else {
            self.tail = i;
        }
        self.head = i;
        self.len += 1;
    }

    /// Removes `i`; returns whether it was there.
    pub fn remove(&mut self, i: u32) -> bool {
        let u = i as usize;
        if !self.member[u] {
            return false;
        }
        let (p, n) = (self.prev[u], self.next[u]);
        if p != NIL {
            self.next[p as usize] = n;
        } else {
            self.head = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        } else {
            self.tail = p;
        }
        self.member[u] = false;
        self.len -= 1;
        true
    }

    /// The least recent item.
    pub fn back(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// Removes and returns the least recent item.
    pub fn pop_back(&mut self) -> Option<u32> {
        let t = self.back()?;
        self.remove(t);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recency_order() {
        let mut l = DList::new(4);
        for i in [0, 1, 2, 0] {
            l.push_front(i);
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.pop_back(), Some(1));
        assert!(l.remove(0));
        assert_eq!(l.back(), Some(2));
        assert_eq!(l.pop_back(), Some(2));
        assert!(l.is_empty() && l.pop_back().is_none());
    }
}
