//! The node's table of rows, one per catalog slot, and the thread that learns into it.
//!

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;

use super::row::Row;
use crate::catalog::ItemRef;

/// A link waiting to be applied (see [`Transitions::defer`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Link {
    from: ItemRef,
    to: ItemRef,
    w: f32,
}

/// Links buffered before they are applied in row order.
pub const FLUSH_AT: usize = 8192;

/// Links buffered while a batch is away on the learner thread before recording waits for
/// it: the bound on how far learning may fall behind (and on the buffer's memory).
const BACKLOG_MAX: usize = 8 * FLUSH_AT;

/// Rows for every catalog slot.
///
/// Learning one view touches up to `2 × learn-window` rows scattered over the table, and
/// each touch is a few cache misses: that, not arithmetic, is what a record costs. So links
/// are buffered ([`Transitions::defer`]) and applied in batches sorted by row
/// ([`Transitions::flush`]), each row once per batch while it is hot. The sort is stable,
/// so every row sees its links in the original order and ends in exactly the state that
/// immediate application gives; rows are independent, so when a batch is applied changes
/// nothing. Readers, and edits of rows (decay, eviction, imports), flush first (the engine
/// does; edits assert it), which keeps every answer exact.
///
/// That last property lets full batches be applied on a thread of their own
/// ([`Transitions::set_background`]): the rows travel to the learner with the batch
/// and come back with it applied, so they are never shared and never locked, and every
/// `&mut` method (and so every reader, through `flush`) first waits for them to come home.
/// Answers stay exactly those of inline learning; only the recording thread no longer
/// pays for the scattered row updates.
#[derive(Debug, Default)]
pub struct Transitions {
    rows: Vec<Row>,
    pending: Vec<Link>,
    scratch: Vec<Link>,
    /// Stamp given to rows changed from now on (see [`crate::federation`]).
    epoch: u32,
    /// Where full batches are applied.
    mode: Mode,
    /// Batches applied on the learner thread since the process started (not persisted).
    handed_off: u64,
}

impl Clone for Transitions {
    /// A copy learns inline (the learner thread is not shared). Rows away on the learner
    /// cannot be reached through `&self`: clone after a flush.
    fn clone(&self) -> Self {
        // A copy taken then would silently have no rows: refuse loudly instead.
        assert!(!self.is_away(), "cloned with rows on the learner thread");
        Transitions {
            rows: self.rows.clone(),
            pending: self.pending.clone(),
            scratch: Vec::new(),
            epoch: self.epoch,
            mode: Mode::Inline,
            handed_off: 0,
        }
    }
}

impl PartialEq for Transitions {
    fn eq(&self, other: &Self) -> bool {
        self.rows == other.rows && self.pending == other.pending
    }
}

/// Where full batches are applied.
#[derive(Debug, Default)]
enum Mode {
    /// By the caller, at once.
    #[default]
    Inline,
    /// On a learner thread, started with the first full batch.
    Background,
    /// On this learner thread.
    Running(Learner),
}

/// A batch on its way to the learner thread and back.
#[derive(Debug)]
struct Job {
    rows: Vec<Row>,
    links: Vec<Link>,
    scratch: Vec<Link>,
    max: usize,
    admission: f32,
    epoch: u32,
}

impl Job {
    fn run(&mut self) {
        apply(
            &mut self.rows,
            &mut self.links,
            &mut self.scratch,
            self.max,
            self.admission,
            self.epoch,
        );
    }
}

/// The thread that applies batches, and the channels to it.
#[derive(Debug)]
struct Learner {
    to: Option<mpsc::Sender<Job>>,
    back: mpsc::Receiver<Job>,
    thread: Option<thread::JoinHandle<()>>,
    /// Whether a batch (and so the rows) is on the thread now.
    away: bool,
}

impl Learner {
    fn spawn() -> std::io::Result<Self> {
        let (to, jobs) = mpsc::channel::<Job>();
        let (done, back) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("edge-learner".into())
            .spawn(move || {
                for mut job in jobs {
                    // The rows travel with the job: whatever happens while applying it, they
                    // must go back (a panic here would be a bug, but it must not lose the
                    // model on top of it).
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| job.run()));
                    if done.send(job).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Learner {
            to: Some(to),
            back,
            thread: Some(thread),
            away: false,
        })
    }
}

impl Drop for Learner {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; wait for it, so that no code of this
        // library runs after its owner is gone (a Redis module may be unloaded).
        drop(self.to.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Transitions {
    /// Buffers `w` for the link `from → to`; returns true once enough links wait that the
    /// caller should [`hand_off`](Transitions::hand_off).
    pub fn defer(&mut self, from: ItemRef, to: ItemRef, w: f32) -> bool {
        self.pending.push(Link { from, to, w });
        self.pending.len() >= FLUSH_AT
    }

    /// Applies full batches on a thread of its own from now on (see the type's docs), or
    /// again inline. The thread starts with the first full batch, so a table that never
    /// fills one (or a module whose load fails) never has one; if it cannot start,
    /// learning stays inline. Turning it off waits for a batch away and ends the thread.
    pub fn set_background(&mut self, on: bool) {
        match (on, &self.mode) {
            (true, Mode::Inline) => self.mode = Mode::Background,
            (false, Mode::Background | Mode::Running(_)) => {
                self.home();
                // Dropping the learner closes its channel and joins it.
                self.mode = Mode::Inline;
            }
            _ => {}
        }
    }

    /// Stops using the learner thread without joining it. For a forked child process,
    /// where the thread does not exist: call [`quiesce`](Transitions::quiesce) before the
    /// fork so that no batch is away.
    pub fn forget_learner(&mut self) {
        debug_assert!(!self.is_away());
        std::mem::forget(std::mem::take(&mut self.mode));
    }

    /// Waits until no batch is away (before a fork, so the child finds the rows at home);
    /// returns whether one was.
    pub fn quiesce(&mut self) -> bool {
        let away = self.is_away();
        self.home();
        away
    }

    fn is_away(&self) -> bool {
        matches!(&self.mode, Mode::Running(l) if l.away)
    }

    /// Brings the rows back from the learner thread, waiting for its batch if need be.
    fn home(&mut self) {
        let Mode::Running(l) = &mut self.mode else {
            return;
        };
        if !l.away {
            return;
        }
        let job = l
            .back
            .recv()
            .expect("the learner thread returns every batch");
        l.away = false;
        self.take_back(job);
    }

    fn take_back(&mut self, job: Job) {
        self.rows = job.rows;
        self.scratch = job.scratch;
        if self.pending.capacity() < job.links.capacity() {
            let mut links = job.links;
            links.clear();
            links.extend_from_slice(&self.pending);
            self.pending = links;
        }
    }

    /// A full buffer: sends it to the learner thread with the rows, or, without one,
    /// applies it now. While a batch is away the next one keeps buffering, up to a bound.
    pub fn hand_off(&mut self, max: usize, admission: f32) {
        if matches!(self.mode, Mode::Background) {
            self.mode = Learner::spawn().map_or(Mode::Inline, Mode::Running);
        }
        let Mode::Running(l) = &mut self.mode else {
            return self.flush(max, admission);
        };
        if l.away {
            match l.back.try_recv() {
                Ok(job) => {
                    l.away = false;
                    self.take_back(job);
                }
                Err(_) if self.pending.len() < BACKLOG_MAX => return,
                Err(_) => self.home(),
            }
        }
        let Mode::Running(l) = &mut self.mode else {
            unreachable!("checked above");
        };
        let job = Job {
            rows: std::mem::take(&mut self.rows),
            links: std::mem::take(&mut self.pending),
            scratch: std::mem::take(&mut self.scratch),
            max,
            admission,
            epoch: self.epoch,
        };
        let to = l.to.as_ref().expect("open until dropped");
        if let Err(mpsc::SendError(mut job)) = to.send(job) {
            // The thread is gone (it cannot panic on this data, but be safe): apply here.
            job.run();
            self.mode = Mode::Inline;
            self.take_back(job);
            return;
        }
        l.away = true;
        self.handed_off += 1;
    }

    /// Batches applied on the learner thread so far: how much of learning left the caller's
    /// thread (a reader that needs the rows applies what is left itself).
    pub fn handed_off(&self) -> u64 {
        self.handed_off
    }

    /// The stamp rows changed from now on receive.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Starts a new export epoch (buffered links are flushed by the caller first, so they
    /// are stamped with the epoch they were learned in).
    pub fn set_epoch(&mut self, epoch: u32) {
        debug_assert!(self.pending.is_empty() && !self.is_away());
        self.epoch = epoch;
    }

    /// Replaces the row of `from` (importing peers' evidence).
    pub fn set_row(&mut self, from: ItemRef, row: Row) {
        *self.row_mut(from) = row;
    }

    /// Edits to a row must come after every buffered link (flush first), or they would
    /// land before links learned earlier: with a batch away and a backlog buffered, the
    /// backlog is applied after the edit.
    fn edit_ready(&mut self) {
        debug_assert!(self.pending.is_empty(), "edited with links pending");
        self.home();
    }

    /// Drops every row (a full import replaces everything).
    pub fn clear(&mut self) {
        self.edit_ready();
        self.rows.clear();
    }

    /// Links buffered and not yet applied.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Applies every buffered link, row by row, each row's links in arrival order, after
    /// any batch away on the learner thread.
    pub fn flush(&mut self, max: usize, admission: f32) {
        self.home();
        if self.pending.is_empty() {
            return;
        }
        let epoch = self.epoch;
        apply(
            &mut self.rows,
            &mut self.pending,
            &mut self.scratch,
            max,
            admission,
            epoch,
        );
    }

    /// The row of `from`, if it has one. Buffered links are not in it: flush first.
    pub fn row(&self, from: ItemRef) -> Option<&Row> {
        debug_assert!(self.pending.is_empty() && !self.is_away(), "read unflushed");
        self.rows.get(from.slot as usize)
    }

    /// The row of `from`, created if needed.
    pub fn row_mut(&mut self, from: ItemRef) -> &mut Row {
        self.edit_ready();
        row_at(&mut self.rows, from.slot)
    }

    /// Forgets the row of an evicted slot.
    pub fn clear_slot(&mut self, slot: u32) {
        self.edit_ready();
        if let Some(r) = self.rows.get_mut(slot as usize) {
            *r = Row::default();
        }
    }

    /// Multiplies every weight by `factor` (a decay rescale). Flush first.
    pub fn scale(&mut self, factor: f32) {
        self.edit_ready();
        self.rows.iter_mut().for_each(|r| r.scale(factor));
    }

    /// Applies a lowered row bound to every row.
    pub fn shrink(&mut self, max: usize) {
        self.edit_ready();
        self.rows.iter_mut().for_each(|r| r.shrink(max));
    }

    /// Follows a catalog compaction: each row moves to its item's new slot and its entries
    /// are renumbered by `map` (old slot to new, `u32::MAX` for a slot that was free: rows
    /// of free slots are already empty, and entries naming one are stale, so both go).
    /// Every buffer is returned to the allocator. Flush first.
    pub fn remap(&mut self, map: &[u32]) {
        self.edit_ready();
        // Only the rows of live items are visited; the old table goes to a thread of its
        // own to be dropped (see [`crate::catalog::release`]).
        let mut old = std::mem::take(&mut self.rows);
        let mut rows = Vec::new();
        for (slot, &new) in map.iter().enumerate().take(old.len()) {
            if new == u32::MAX {
                continue;
            }
            let mut row = std::mem::take(&mut old[slot]);
            row.remap(map);
            debug_assert_eq!(rows.len(), new as usize, "compaction keeps the order");
            rows.push(row);
        }
        self.rows = rows;
        crate::catalog::release(old);
        self.pending = Vec::new();
        self.scratch = Vec::new();
    }

    /// Holds rows to a lowered bound from row `from` on, until about `budget` entries were
    /// looked at: one bounded step of [`Transitions::shrink`]. Returns the row to go on
    /// from (`None`: done) and how many rows were visited. Flush first.
    pub fn shrink_some(&mut self, from: usize, max: usize, budget: u64) -> (Option<usize>, usize) {
        self.edit_ready();
        let mut work = 0u64;
        let mut i = from;
        while i < self.rows.len() && work < budget {
            // A row over the bound costs its entries (it is sorted), else a glance.
            let len = self.rows[i].len();
            work += if len > max { len as u64 } else { 1 };
            self.rows[i].shrink(max);
            i += 1;
        }
        ((i < self.rows.len()).then_some(i), i - from)
    }

    /// Holds the rows in `range` (clamped to the rows held) to a lowered bound: the
    /// companion of [`Transitions::shrink_some`] for a second table over the same items.
    pub fn shrink_range(&mut self, range: std::ops::Range<usize>, max: usize) {
        self.edit_ready();
        let end = range.end.min(self.rows.len());
        for r in self
            .rows
            .get_mut(range.start.min(end)..end)
            .into_iter()
            .flatten()
        {
            r.shrink(max);
        }
    }

    /// Number of (item, neighbour) pairs stored.
    pub fn len(&self) -> usize {
        debug_assert!(!self.is_away(), "read unflushed");
        self.rows.iter().map(Row::len).sum()
    }

    /// True when no pair is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows by slot, for persistence (flush first).
    pub fn rows(&self) -> &[Row] {
        debug_assert!(!self.is_away(), "read unflushed");
        &self.rows
    }

    /// Rebuilds the table from persisted rows and its epoch.
    pub fn from_rows(rows: Vec<Row>, epoch: u32) -> Self {
        Transitions {
            rows,
            epoch,
            ..Transitions::default()
        }
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        debug_assert!(!self.is_away(), "read unflushed");
        self.rows.capacity() * std::mem::size_of::<Row>()
            + self.rows.iter().map(Row::heap_bytes).sum::<usize>()
            + (self.pending.capacity() + self.scratch.capacity()) * std::mem::size_of::<Link>()
    }
}

/// The row of `slot`, created if needed.
fn row_at(rows: &mut Vec<Row>, slot: u32) -> &mut Row {
    let i = slot as usize;
    if rows.len() <= i {
        rows.resize_with(i + 1, Row::default);
    }
    &mut rows[i]
}

/// Applies `links` to `rows` in row order (stable, so each row sees its links as they
/// came) and empties `links`.
fn apply(
    rows: &mut Vec<Row>,
    links: &mut Vec<Link>,
    scratch: &mut Vec<Link>,
    max: usize,
    admission: f32,
    epoch: u32,
) {
    // A few links cost less applied as they came than sorted.
    if links.len() > 64 {
        sort_by_row(links, scratch);
    }
    for l in links.iter() {
        let row = row_at(rows, l.from.slot);
        row.add(l.to, l.w, max, admission);
        row.stamp = epoch;
    }
    links.clear();
}

/// Stable LSD radix sort of links by source slot, one byte per pass and only as many
/// passes as the largest slot needs: O(n), and stable, so each row's links keep their
/// arrival order.
fn sort_by_row(links: &mut Vec<Link>, scratch: &mut Vec<Link>) {
    let max = links.iter().map(|l| l.from.slot).max().unwrap_or(0);
    let mut shift = 0;
    while shift < 32 && (max >> shift) > 0 {
        let mut counts = [0usize; 256];
        for l in links.iter() {
            counts[((l.from.slot >> shift) & 0xff) as usize] += 1;
        }
        let mut sum = 0;
        for c in counts.iter_mut() {
            (*c, sum) = (sum, sum + *c);
        }
        scratch.clear();
        scratch.resize(links.len(), links[0]);
        for l in links.iter() {
            let b = ((l.from.slot >> shift) & 0xff) as usize;
            scratch[counts[b]] = *l;
            counts[b] += 1;
        }
        std::mem::swap(links, scratch);
        shift += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::row::tests::refs;

    use crate::catalog::Catalog;

    #[test]
    fn deferred_links_end_exactly_as_immediate_ones() {
        let mut c = Catalog::default();
        let r: Vec<ItemRef> = (0..70_000)
            .map(|i| c.intern(&format!("I{i}"), 100_000).unwrap().0)
            .collect();
        let (mut now, mut later) = (Transitions::default(), Transitions::default());
        let mut x: u64 = 7;
        for n in 0..30_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Sources over 16 bits exercise both radix passes.
            let from = r[((x >> 33) % 70_000) as usize % if n % 3 == 0 { 70_000 } else { 40 }];
            let to = r[((x >> 13) % 50) as usize];
            let w = 1.0 + (x % 7) as f32;
            now.row_mut(from).add(to, w, 8, 0.25);
            if later.defer(from, to, w) {
                later.flush(8, 0.25);
            }
        }
        later.flush(8, 0.25);
        assert_eq!(later.pending(), 0);
        assert_eq!(later, now);
    }

    /// A pseudo-random link among `from_span` × `to_span` slots, weight 1 to 3.
    fn random_link(x: &mut u64, from_span: u64, to_span: u64) -> (ItemRef, ItemRef, f32) {
        *x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = |bits: u32, span: u64| ItemRef {
            slot: ((*x >> bits) % span) as u32,
            gen: 0,
        };
        (
            r(33, from_span),
            r(13, to_span),
            1.0 + ((*x >> 7) % 3) as f32,
        )
    }

    /// Two empty tables: one learning inline, one on its learner thread.
    fn inline_and_background() -> (Transitions, Transitions) {
        let mut background = Transitions::default();
        background.set_background(true);
        (Transitions::default(), background)
    }

    /// Drives two tables with the same links, one learning inline and one on its learner
    /// thread, with readers and row edits in between; they must agree at every read.
    #[test]
    fn background_learning_gives_the_rows_inline_learning_gives() {
        let (mut inline, mut background) = inline_and_background();
        let mut x: u64 = 7;
        let mut handed = 0;
        for n in 0..(BACKLOG_MAX * 3) as u64 {
            let (from, to, w) = random_link(&mut x, 700, 900);
            let full = inline.defer(from, to, w);
            assert_eq!(background.defer(from, to, w), full);
            if full {
                inline.hand_off(16, 0.5);
                background.hand_off(16, 0.5);
                handed += 1;
            }
            // Now and then, with a batch likely away: an edit (after a flush, as the engine
            // does) that must wait for it, or a reader.
            match n % 50_021 {
                0 => {
                    inline.flush(16, 0.5);
                    inline.clear_slot(from.slot);
                    background.flush(16, 0.5);
                    background.clear_slot(from.slot);
                }
                12_000 => {
                    inline.flush(16, 0.5);
                    inline.scale(0.5);
                    background.flush(16, 0.5);
                    background.scale(0.5);
                }
                25_000 => {
                    inline.flush(16, 0.5);
                    inline.set_row(to, Row::default());
                    background.flush(16, 0.5);
                    background.set_row(to, Row::default());
                }
                38_000 => {
                    inline.flush(16, 0.5);
                    background.flush(16, 0.5);
                    assert!(inline == background, "diverged at {n}");
                    assert_eq!(inline.len(), background.len());
                }
                // Off and on again, likely with a batch away: it comes home first.
                45_000 => background.set_background(false),
                46_000 => {
                    assert!(matches!(background.mode, Mode::Inline));
                    background.set_background(true);
                }
                _ => {}
            }
        }
        assert!(handed > 10);
        assert!(background.handed_off() > 0 && inline.handed_off() == 0);
        inline.flush(16, 0.5);
        background.flush(16, 0.5);
        assert!(inline == background);
        assert!(!inline.is_empty());
    }

    /// A batch big enough to keep the learner busy for a while, then full buffers as fast
    /// as they come: they must pile up as a backlog (the producer does not wait), hit the
    /// backlog bound (then it waits), and still land in order.
    #[test]
    fn a_backlog_behind_a_busy_learner_lands_in_order() {
        let (mut inline, mut background) = inline_and_background();
        let mut x: u64 = 11;
        let mut link = || random_link(&mut x, 5_000, 5_000);
        // One huge first batch (defer says "full" long before; nobody hands off yet).
        for _ in 0..8 * BACKLOG_MAX {
            let (f, t, w) = link();
            inline.defer(f, t, w);
            background.defer(f, t, w);
        }
        inline.hand_off(128, 0.25);
        background.hand_off(128, 0.25);
        assert!(background.is_away());
        // Then full buffers, handed off at once: the first few find the batch away.
        let mut backlogged = 0;
        for _ in 0..2 * BACKLOG_MAX {
            let (f, t, w) = link();
            inline.defer(f, t, w);
            if background.defer(f, t, w) {
                backlogged = backlogged.max(background.pending());
                inline.hand_off(128, 0.25);
                background.hand_off(128, 0.25);
            }
        }
        // It reached the bound, where recording waits for the learner.
        assert!(
            backlogged >= BACKLOG_MAX,
            "no backlog built up ({backlogged})"
        );
        inline.flush(128, 0.25);
        background.flush(128, 0.25);
        assert!(inline == background);
    }

    /// A lowered row bound is applied a budget of entries at a time, and resumes where
    /// the last step stopped.
    #[test]
    fn rows_shrink_a_budget_at_a_time() {
        let r = refs(40);
        let mut t = Transitions::default();
        for from in &r[..10] {
            for to in &r[10..40] {
                t.row_mut(*from).add(*to, 1.0, 64, 0.0);
            }
        }
        assert_eq!(
            t.shrink_some(0, 4, 60),
            (Some(2), 2),
            "two rows of 30 entries"
        );
        assert_eq!(t.rows()[1].len(), 4);
        assert_eq!(t.rows()[2].len(), 30, "not reached yet");
        let (mut next, mut steps) = (Some(2), 1);
        while let Some(from) = next {
            next = t.shrink_some(from, 4, 60).0;
            steps += 1;
        }
        assert_eq!(steps, 5);
        assert!(t.rows().iter().all(|row| row.len() <= 4));
        assert_eq!(t.shrink_some(0, 4, 1 << 20), (None, t.rows().len()));
    }
}
