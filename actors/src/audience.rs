//! Who receives a durable event: the one decision that live routing (the FeedBroker) and the
//! resume replay both make, from the same records, so they cannot disagree.
//!
//! An event is addressed either to one user or to an author and whoever follows the author *as
//! of the event's id*, and it reaches none of them who hides its actor (a block either way, or
//! a mute) *as of the event's id*. Whom a user follows and hides changes only through routing
//! records of the same ordered log, applied in id order with the events: [`Followees::apply`],
//! [`Followees::apply_filter`].

use std::collections::HashSet;

use crate::committed::{LogEntry, Logged};
use crate::event_log::CommittedEvent;
use crate::ids::{EventId, UserId};
use crate::log_record::{FilterChange, FilterKind, FollowChange};

/// Who a durable event is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// The author and everyone following them.
    FollowersOf(UserId),
    /// One user (notifications).
    User(UserId),
}

impl Audience {
    /// Whether `user`, who follows exactly the authors for which `follows` answers true and
    /// hides exactly the users for which `hides` answers true at this event's id, receives an
    /// event of this audience caused by `actor`. The only place this is decided.
    pub fn reaches(
        self,
        user: UserId,
        actor: Option<UserId>,
        follows: impl FnOnce(UserId) -> bool,
        hides: impl FnOnce(UserId) -> bool,
    ) -> bool {
        let addressed = match self {
            Audience::User(recipient) => recipient == user,
            Audience::FollowersOf(author) => author == user || follows(author),
        };
        addressed && !actor.is_some_and(|actor| actor != user && hides(actor))
    }
}

/// The authors one user follows, and the users whose events they do not receive (blocked by
/// them, blocking them, muted by them), at some position of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Followees {
    follows: HashSet<UserId>,
    hidden: HashSet<(UserId, FilterKind)>,
}

impl Followees {
    pub fn new(authors: impl IntoIterator<Item = UserId>) -> Self {
        Self {
            follows: authors.into_iter().collect(),
            hidden: HashSet::new(),
        }
    }

    /// These followees, hiding `hidden` (each user with the reason).
    pub fn with_hidden(mut self, hidden: impl IntoIterator<Item = (UserId, FilterKind)>) -> Self {
        self.hidden.extend(hidden);
        self
    }

    pub fn contains(&self, author: UserId) -> bool {
        self.follows.contains(&author)
    }

    /// Whether events `other` causes are kept from this user, for any reason.
    pub fn hides(&self, other: UserId) -> bool {
        [FilterKind::Block, FilterKind::BlockedBy, FilterKind::Mute]
            .into_iter()
            .any(|kind| self.hidden.contains(&(other, kind)))
    }

    pub fn iter(&self) -> impl Iterator<Item = UserId> + '_ {
        self.follows.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.follows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.follows.is_empty()
    }

    /// Applies this user's routing record; answers whether anything changed.
    pub fn apply(&mut self, change: &FollowChange) -> bool {
        if change.following {
            self.follows.insert(change.followee)
        } else {
            self.follows.remove(&change.followee)
        }
    }

    /// Undoes this user's routing record (walking the log backwards from a later position). A
    /// record is written only when the edge changed, so before it the edge was the opposite.
    pub fn undo(&mut self, change: &FollowChange) {
        if change.following {
            self.follows.remove(&change.followee);
        } else {
            self.follows.insert(change.followee);
        }
    }

    /// Applies this user's filter record; answers whether anything changed.
    pub fn apply_filter(&mut self, change: &FilterChange) -> bool {
        let key = (change.other, change.kind);
        if change.on {
            self.hidden.insert(key)
        } else {
            self.hidden.remove(&key)
        }
    }

    /// Undoes this user's filter record (written, like a follow record, only on a change).
    pub fn undo_filter(&mut self, change: &FilterChange) {
        let key = (change.other, change.kind);
        if change.on {
            self.hidden.remove(&key);
        } else {
            self.hidden.insert(key);
        }
    }

    /// Whether `event` reaches `user` with these followees.
    pub fn receives(&self, user: UserId, event: &CommittedEvent) -> bool {
        event.audience.reaches(
            user,
            event.actor(),
            |author| self.contains(author),
            |other| self.hides(other),
        )
    }
}

/// One user's routing record: a follow change or a filter change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    Follow(FollowChange),
    Filter(FilterChange),
}

impl RouteChange {
    /// `entry` as a routing record of `user`'s, if it is one.
    pub fn of_user(entry: &LogEntry, user: UserId) -> Option<Self> {
        match entry {
            LogEntry::Follow(f) if f.follower == user => Some(RouteChange::Follow(*f)),
            LogEntry::Filter(f) if f.user == user => Some(RouteChange::Filter(*f)),
            _ => None,
        }
    }

    /// Whose routing record it is.
    pub fn user(&self) -> UserId {
        match self {
            RouteChange::Follow(f) => f.follower,
            RouteChange::Filter(f) => f.user,
        }
    }
}

/// The followees of `user` just after `position`, from the followees at a later position and
/// the user's routing records after `position` up to it (in id order).
pub fn followees_at(
    user: UserId,
    mut later: Followees,
    records_after: &[(EventId, RouteChange)],
    position: EventId,
) -> Followees {
    for (id, change) in records_after.iter().rev() {
        if *id > position && change.user() == user {
            match change {
                RouteChange::Follow(f) => later.undo(f),
                RouteChange::Filter(f) => later.undo_filter(f),
            }
        }
    }
    later
}

/// What of `entries` (in id order, after the position at which `user` followed `followees`)
/// is addressed to `user`: the events, with the user's routing records applied as they come.
/// Returns the selected events and the followees after the last entry.
pub fn select_for_user<'a>(
    user: UserId,
    mut followees: Followees,
    entries: impl IntoIterator<Item = &'a Logged>,
) -> (Vec<&'a Logged>, Followees) {
    let mut selected = Vec::new();
    for logged in entries {
        match &logged.entry {
            LogEntry::Follow(change) if change.follower == user => {
                followees.apply(change);
            }
            LogEntry::Filter(change) if change.user == user => {
                followees.apply_filter(change);
            }
            LogEntry::Event(event) if followees.receives(user, event) => selected.push(logged),
            LogEntry::Follow(_)
            | LogEntry::Filter(_)
            | LogEntry::Account(_)
            | LogEntry::Event(_)
            | LogEntry::Skip => {}
        }
    }
    (selected, followees)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::committed::fixtures::post;

    fn follow(id: i64, follower: i64, followee: i64, following: bool) -> Logged {
        Logged {
            id: EventId(id),
            entry: LogEntry::Follow(FollowChange {
                follower: UserId(follower),
                followee: UserId(followee),
                following,
            }),
        }
    }

    #[test]
    fn an_event_reaches_the_audience_as_it_stood_at_its_id() {
        let log = [
            post(1, 2),
            follow(2, 1, 2, true),
            post(3, 2),
            follow(4, 1, 2, false),
            post(5, 2),
            post(6, 1),
            follow(7, 9, 2, true),
        ];
        let (selected, after) = select_for_user(UserId(1), Followees::default(), &log);
        let ids: Vec<i64> = selected.iter().map(|l| l.id.0).collect();
        assert_eq!(ids, vec![3, 6]);
        assert!(after.is_empty());
    }

    #[test]
    fn followees_at_an_earlier_position_undo_the_later_records() {
        let now = Followees::new([UserId(2), UserId(3)]);
        let records = [
            (
                EventId(5),
                RouteChange::Follow(FollowChange {
                    follower: UserId(1),
                    followee: UserId(2),
                    following: true,
                }),
            ),
            (
                EventId(8),
                RouteChange::Follow(FollowChange {
                    follower: UserId(1),
                    followee: UserId(4),
                    following: false,
                }),
            ),
        ];
        let at = |p| followees_at(UserId(1), now.clone(), &records, EventId(p));
        assert_eq!(at(4), Followees::new([UserId(3), UserId(4)]));
        assert_eq!(at(5), Followees::new([UserId(2), UserId(3), UserId(4)]));
        assert_eq!(at(8), now);
    }

    fn filter(id: i64, user: i64, other: i64, kind: FilterKind, on: bool) -> Logged {
        Logged {
            id: EventId(id),
            entry: LogEntry::Filter(FilterChange {
                user: UserId(user),
                other: UserId(other),
                kind,
                on,
            }),
        }
    }

    fn notification(id: i64, recipient: i64, actor: i64) -> Logged {
        Logged {
            id: EventId(id),
            entry: LogEntry::Event(std::sync::Arc::new(CommittedEvent {
                id: EventId(id),
                kind: crate::protocol::EventKind::Notification,
                audience: Audience::User(UserId(recipient)),
                payload: serde_json::json!({"actor": {"id": actor}}),
            })),
        }
    }

    #[test]
    fn a_hidden_actor_reaches_nobody_who_hides_them_while_the_filter_stands() {
        let log = [
            filter(1, 1, 2, FilterKind::Mute, true),
            post(2, 2),
            notification(3, 1, 2),
            notification(4, 1, 3),
            post(5, 1),
            filter(6, 1, 2, FilterKind::Mute, false),
            post(7, 2),
            filter(8, 1, 2, FilterKind::BlockedBy, true),
            notification(9, 1, 2),
            post(10, 2),
        ];
        let following = Followees::new([UserId(2)]);
        let (selected, after) = select_for_user(UserId(1), following, &log);
        let ids: Vec<i64> = selected.iter().map(|l| l.id.0).collect();
        assert_eq!(ids, vec![4, 5, 7]);
        assert!(after.hides(UserId(2)));
        assert!(!after.hides(UserId(3)));
    }

    #[test]
    fn filters_at_an_earlier_position_undo_the_later_records() {
        let mute = |on| FilterChange {
            user: UserId(1),
            other: UserId(2),
            kind: FilterKind::Mute,
            on,
        };
        let now = Followees::default();
        let records = [
            (EventId(3), RouteChange::Filter(mute(true))),
            (EventId(6), RouteChange::Filter(mute(false))),
        ];
        let at = |p| followees_at(UserId(1), now.clone(), &records, EventId(p));
        assert!(!at(2).hides(UserId(2)));
        assert!(at(3).hides(UserId(2)));
        assert!(at(5).hides(UserId(2)));
        assert!(!at(6).hides(UserId(2)));
    }
}
