//! In-order release of the log: records arrive from this node's DbWriter, from other nodes
//! through Redis and from PostgreSQL repairs, in any order, twice or not at all; they leave in
//! id order, each once, and a missing id is named so it can be read from PostgreSQL.
//!
//! Ids are dense and in commit order, so every id up to the highest seen is a committed record:
//! a hole is something a message did not bring, never something that will not exist. A repair
//! answers for every id it covers (a purged row or an unknown kind as a skip), so nothing is
//! waited for for ever.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::committed::Logged;
use crate::ids::EventId;

/// A released record and, for this node's own commits, when its COMMIT returned.
pub type Released = (Logged, Option<Instant>);

/// What became of an offered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// It waits for the ids below it, or was released.
    Accepted,
    /// Released already (a node's own commit coming back, a repair overlapping), or ahead of
    /// the start and so covered by it.
    Stale,
    /// The buffer was full: dropped here, to be read from PostgreSQL when its turn comes.
    Shed,
}

/// Bounds of what may wait ahead of a missing id.
#[derive(Debug, Clone, Copy)]
pub struct SequencerLimits {
    pub max_records: usize,
    pub max_bytes: usize,
}

#[derive(Debug)]
pub struct Sequencer {
    /// The next id to release; `None` until the log's head is known.
    next: Option<EventId>,
    waiting: BTreeMap<EventId, Released>,
    waiting_bytes: usize,
    /// The highest id offered (accepted or shed): everything up to it is committed.
    highest_seen: EventId,
    limits: SequencerLimits,
}

impl Sequencer {
    pub fn new(limits: SequencerLimits) -> Self {
        Self {
            next: None,
            waiting: BTreeMap::new(),
            waiting_bytes: 0,
            highest_seen: EventId(0),
            limits,
        }
    }

    /// The next id to release, once started.
    pub fn next(&self) -> Option<EventId> {
        self.next
    }

    /// The last id released (everything at or below it is behind the broker), once started.
    pub fn position(&self) -> Option<EventId> {
        self.next.map(|n| EventId(n.0 - 1))
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn waiting_bytes(&self) -> usize {
        self.waiting_bytes
    }

    /// Starts releasing after `head` (ignored once started). Whatever waits at or below it is
    /// dropped: the start covers it.
    pub fn start_at(&mut self, head: EventId) {
        if self.next.is_some() {
            return;
        }
        let next = EventId(head.0 + 1);
        self.next = Some(next);
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() >= next {
                break;
            }
            let (_, (logged, _)) = entry.remove_entry();
            self.waiting_bytes -= logged.weight();
        }
    }

    pub fn offer(&mut self, logged: Logged, committed_at: Option<Instant>) -> Offered {
        if self.next.is_some_and(|next| logged.id < next) || self.waiting.contains_key(&logged.id) {
            return Offered::Stale;
        }
        self.highest_seen = self.highest_seen.max(logged.id);
        let weight = logged.weight();
        // The next id is always taken: it leaves at once.
        let releasable = self.next == Some(logged.id);
        if !releasable
            && (self.waiting.len() >= self.limits.max_records
                || self.waiting_bytes + weight > self.limits.max_bytes)
        {
            return Offered::Shed;
        }
        self.waiting_bytes += weight;
        self.waiting.insert(logged.id, (logged, committed_at));
        Offered::Accepted
    }

    /// Offers each record in turn, releasing as it goes (so a batch in id order, such as a
    /// repair, passes through a full buffer); answers what was released.
    pub fn offer_all(
        &mut self,
        batch: impl IntoIterator<Item = Logged>,
        committed_at: Option<Instant>,
    ) -> Vec<Released> {
        let mut out = Vec::new();
        for logged in batch {
            self.offer(logged, committed_at);
            out.extend(self.release());
        }
        out
    }

    /// Every record whose predecessors were all released, in id order.
    pub fn release(&mut self) -> Vec<Released> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else {
            return out;
        };
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() != next {
                break;
            }
            let (_, released) = entry.remove_entry();
            self.waiting_bytes -= released.0.weight();
            next = EventId(next.0 + 1);
            out.push(released);
        }
        self.next = Some(next);
        out
    }

    /// The ids known to be committed but missing here: `from..to`, when any.
    pub fn gap(&self) -> Option<(EventId, EventId)> {
        let next = self.next?;
        let to = match self.waiting.keys().next() {
            Some(first) => *first,
            None if self.highest_seen >= next => EventId(self.highest_seen.0 + 1),
            None => return None,
        };
        (to > next).then_some((next, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::committed::LogEntry;

    fn skip(id: i64) -> Logged {
        Logged {
            id: EventId(id),
            entry: LogEntry::Skip,
        }
    }

    fn ids(released: &[Released]) -> Vec<i64> {
        released.iter().map(|(l, _)| l.id.0).collect()
    }

    fn sequencer(max_records: usize) -> Sequencer {
        Sequencer::new(SequencerLimits {
            max_records,
            max_bytes: usize::MAX,
        })
    }

    #[test]
    fn nothing_is_released_before_the_head_is_known() {
        let mut s = sequencer(10);
        assert_eq!(s.offer(skip(5), None), Offered::Accepted);
        assert_eq!(s.offer(skip(7), None), Offered::Accepted);
        assert!(s.release().is_empty());
        s.start_at(EventId(5));
        assert_eq!(s.gap(), Some((EventId(6), EventId(7))));
        assert_eq!(s.offer(skip(6), None), Offered::Accepted);
        assert_eq!(ids(&s.release()), vec![6, 7]);
        assert_eq!(s.offer(skip(6), None), Offered::Stale);
        assert_eq!(s.gap(), None);
    }

    #[test]
    fn what_waits_is_bounded_in_bytes_too() {
        let one = skip(2).weight();
        let mut s = Sequencer::new(SequencerLimits {
            max_records: usize::MAX,
            max_bytes: one * 3,
        });
        s.start_at(EventId(0));
        let shed = (2..100)
            .filter(|id| s.offer(skip(*id), None) == Offered::Shed)
            .count();
        assert_eq!(shed, 95, "three wait, the rest are shed");
        assert!(s.waiting_bytes() <= one * 3);
        // The next id is always taken, and the rest follow from the log.
        let released = s.offer_all((1..100).map(skip), None);
        assert_eq!(released.len(), 99);
        assert_eq!(s.waiting_bytes(), 0);
    }

    #[test]
    fn a_shed_record_leaves_a_gap_to_repair() {
        let mut s = sequencer(1);
        s.start_at(EventId(0));
        assert_eq!(s.offer(skip(2), None), Offered::Accepted);
        assert_eq!(s.offer(skip(3), None), Offered::Shed);
        assert_eq!(s.offer(skip(4), None), Offered::Shed);
        assert!(s.release().is_empty());
        assert_eq!(s.gap(), Some((EventId(1), EventId(2))));
        // The repair of the gap passes through the full buffer in order.
        let released = s.offer_all([skip(1), skip(2), skip(3)], None);
        assert_eq!(ids(&released), vec![1, 2, 3]);
        // 4 was shed too: still known to be missing.
        assert_eq!(s.gap(), Some((EventId(4), EventId(5))));
    }
}
