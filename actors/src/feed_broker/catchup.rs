//! Catching users up while their follow lists load. A user who comes online at the broker's
//! position P is routed nothing until their list is in; everything the broker releases after P
//! is held meanwhile. The list arrives as it stood at some later head L (one snapshot, read for
//! every user arriving together), with the user's routing records after P: undoing those gives
//! the list at P, and walking the held records from P with the same decision as live routing
//! gives exactly what the user should have received since, and the list at the broker's
//! position now.
//!
//! What is held is bounded in bytes; past the bound the users waiting longest are given up
//! (their sessions reconnect with `since`, which is exact).

use std::collections::{HashMap, VecDeque};

use crate::audience::{Followees, followees_at, select_for_user};
use crate::committed::Logged;
use crate::follow_graph::FollowSnapshot;
use crate::ids::{EventId, UserId};

/// A user whose list is in: the events to hand to their sessions, in id order, and their
/// followees at the broker's position.
#[derive(Debug)]
pub struct CaughtUp {
    pub user: UserId,
    pub deliver: Vec<Logged>,
    pub followees: Followees,
}

#[derive(Debug)]
pub struct Catchup {
    /// Users waiting for their list → the broker position they came online at.
    loading: HashMap<UserId, EventId>,
    /// Users not yet in a read, oldest first.
    queued: VecDeque<UserId>,
    /// Users in the read under way.
    in_flight: Vec<UserId>,
    /// Everything released after the oldest loading user's position, in id order.
    held: VecDeque<Logged>,
    held_bytes: usize,
    max_held_bytes: usize,
    max_batch: usize,
}

impl Catchup {
    pub fn new(max_held_bytes: usize, max_batch: usize) -> Self {
        Self {
            loading: HashMap::new(),
            queued: VecDeque::new(),
            in_flight: Vec::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            max_held_bytes,
            max_batch: max_batch.max(1),
        }
    }

    pub fn is_loading(&self, user: UserId) -> bool {
        self.loading.contains_key(&user)
    }

    pub fn loading(&self) -> usize {
        self.loading.len()
    }

    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// `user` came online at broker position `position`.
    pub fn start(&mut self, user: UserId, position: EventId) {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.loading.entry(user) {
            entry.insert(position);
            self.queued.push_back(user);
        }
    }

    /// `user` left before their list was in.
    pub fn cancel(&mut self, user: UserId) {
        if self.loading.remove(&user).is_some() {
            self.queued.retain(|u| *u != user);
            self.trim();
        }
    }

    /// A record the broker released. Answers the users given up because holding it passed
    /// the bound (their sessions must be closed so that they resume with `since`).
    pub fn released(&mut self, logged: &Logged) -> Vec<UserId> {
        if self.loading.is_empty() {
            return Vec::new();
        }
        self.held_bytes += logged.weight();
        self.held.push_back(logged.clone());
        let mut given_up = Vec::new();
        while self.held_bytes > self.max_held_bytes {
            let Some((&oldest, _)) = self.loading.iter().min_by_key(|(_, p)| **p) else {
                break;
            };
            self.loading.remove(&oldest);
            self.queued.retain(|u| *u != oldest);
            given_up.push(oldest);
            self.trim();
        }
        given_up
    }

    /// The next read to make, when none is under way: users, and the position after which
    /// their routing records are needed.
    pub fn next_read(&mut self) -> Option<(Vec<UserId>, EventId)> {
        if !self.in_flight.is_empty() || self.queued.is_empty() {
            return None;
        }
        let take = self.queued.len().min(self.max_batch);
        let mut users: Vec<UserId> = self.queued.drain(..take).collect();
        users.sort_unstable();
        users.dedup();
        let after = users
            .iter()
            .filter_map(|u| self.loading.get(u))
            .min()
            .copied()?;
        self.in_flight = users;
        Some((self.in_flight.clone(), after))
    }

    /// The read failed: its users wait for the next one.
    pub fn failed(&mut self) {
        let users = std::mem::take(&mut self.in_flight);
        for user in users.into_iter().rev() {
            if self.loading.contains_key(&user) {
                self.queued.push_front(user);
            }
        }
    }

    /// The read answered; `position` is the broker's now. Users whose snapshot is behind their
    /// own position (it cannot be, read from the primary after it) wait for another read.
    pub fn loaded(&mut self, snapshot: &FollowSnapshot, position: EventId) -> Vec<CaughtUp> {
        let users = std::mem::take(&mut self.in_flight);
        let mut out = Vec::new();
        for user in users {
            let Some(&from) = self.loading.get(&user) else {
                continue; // left meanwhile
            };
            if snapshot.head < from {
                self.queued.push_back(user);
                continue;
            }
            self.loading.remove(&user);
            let now = Followees::new(snapshot.followees.get(&user).into_iter().flatten().copied())
                .with_hidden(snapshot.hidden.get(&user).into_iter().flatten().copied());
            let at_from = followees_at(user, now, &snapshot.records, from);
            let after_from = self.held.iter().filter(|l| l.id > from);
            let (selected, followees) = select_for_user(user, at_from, after_from);
            debug_assert!(self.held.back().is_none_or(|l| l.id <= position));
            out.push(CaughtUp {
                user,
                deliver: selected.into_iter().cloned().collect(),
                followees,
            });
        }
        self.trim();
        out
    }

    /// Drops what no loading user needs.
    fn trim(&mut self) {
        let oldest = self.loading.values().min().copied();
        while let Some(front) = self.held.front() {
            if oldest.is_some_and(|p| front.id > p) {
                break;
            }
            self.held_bytes -= front.weight();
            self.held.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::committed::LogEntry;
    use crate::committed::fixtures::post;
    use crate::log_record::FollowChange;

    #[test]
    fn a_follow_committed_while_the_list_loads_routes_what_follows_it() {
        let mut c = Catchup::new(usize::MAX, 10);
        c.start(UserId(1), EventId(10));
        let (users, after) = c.next_read().unwrap_or_default();
        assert_eq!((users, after), (vec![UserId(1)], EventId(10)));
        // Released while the read is under way: a post, the follow, a post.
        let follow = Logged {
            id: EventId(12),
            entry: LogEntry::Follow(FollowChange {
                follower: UserId(1),
                followee: UserId(2),
                following: true,
            }),
        };
        for l in [post(11, 2), follow.clone(), post(13, 2)] {
            assert!(c.released(&l).is_empty());
        }
        // The read saw the follow already (head 12).
        let LogEntry::Follow(change) = follow.entry else {
            return;
        };
        let snapshot = FollowSnapshot {
            head: EventId(12),
            followees: [(UserId(1), vec![UserId(2)])].into_iter().collect(),
            records: vec![(EventId(12), crate::audience::RouteChange::Follow(change))],
            ..FollowSnapshot::default()
        };
        let done = c.loaded(&snapshot, EventId(13));
        let ids: Vec<i64> = done[0].deliver.iter().map(|l| l.id.0).collect();
        assert_eq!(ids, vec![13], "11 came before the follow");
        assert!(done[0].followees.contains(UserId(2)));
        assert_eq!(c.held_bytes(), 0, "nothing is held once nobody loads");
    }

    #[test]
    fn past_the_bound_the_longest_waiting_user_is_given_up() {
        let one = post(1, 9).weight();
        let mut c = Catchup::new(one * 2, 10);
        c.start(UserId(1), EventId(0));
        assert!(c.released(&post(1, 9)).is_empty());
        c.start(UserId(2), EventId(1));
        assert!(c.released(&post(2, 9)).is_empty());
        assert_eq!(c.released(&post(3, 9)), vec![UserId(1)]);
        assert!(c.is_loading(UserId(2)) && !c.is_loading(UserId(1)));
        assert!(c.held_bytes() <= one * 2);
    }

    #[test]
    fn a_failed_read_is_made_again() {
        let mut c = Catchup::new(usize::MAX, 1);
        c.start(UserId(1), EventId(0));
        c.start(UserId(2), EventId(0));
        let first = c.next_read().map(|r| r.0);
        assert_eq!(first, Some(vec![UserId(1)]));
        assert!(c.next_read().is_none(), "one read at a time");
        c.failed();
        assert_eq!(c.next_read().map(|r| r.0), Some(vec![UserId(1)]));
    }
}
