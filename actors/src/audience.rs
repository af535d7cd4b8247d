//! Who receives a durable event: the one decision that live routing (the FeedBroker) and the
//! resume replay both make, from the same records, so they cannot disagree.
//!
//! An event is addressed either to one user or to an author and whoever follows the author *as
//! of the event's id*. Whom a user follows changes only through routing records of the same
//! ordered log, applied in id order with the events: [`Followees::apply`].

use std::collections::HashSet;

use crate::committed::{LogEntry, Logged};
use crate::event_log::CommittedEvent;
use crate::ids::{EventId, UserId};
use crate::log_record::FollowChange;

/// Who a durable event is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// The author and everyone following them.
    FollowersOf(UserId),
    /// One user (notifications).
    User(UserId),
}

impl Audience {
    /// Whether `user`, who follows exactly the authors for which `follows` answers true at this
    /// event's id, receives it. The only place this is decided.
    pub fn reaches(self, user: UserId, follows: impl FnOnce(UserId) -> bool) -> bool {
        match self {
            Audience::User(recipient) => recipient == user,
            Audience::FollowersOf(author) => author == user || follows(author),
        }
    }
}

/// The authors one user follows, at some position of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Followees(HashSet<UserId>);

impl Followees {
    pub fn new(authors: impl IntoIterator<Item = UserId>) -> Self {
        Self(authors.into_iter().collect())
    }

    pub fn contains(&self, author: UserId) -> bool {
        self.0.contains(&author)
    }

    pub fn iter(&self) -> impl Iterator<Item = UserId> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Applies this user's routing record; answers whether anything changed.
    pub fn apply(&mut self, change: &FollowChange) -> bool {
        if change.following {
            self.0.insert(change.followee)
        } else {
            self.0.remove(&change.followee)
        }
    }

    /// Undoes this user's routing record (walking the log backwards from a later position). A
    /// record is written only when the edge changed, so before it the edge was the opposite.
    pub fn undo(&mut self, change: &FollowChange) {
        if change.following {
            self.0.remove(&change.followee);
        } else {
            self.0.insert(change.followee);
        }
    }

    /// Whether `event` reaches `user` with these followees.
    pub fn receives(&self, user: UserId, event: &CommittedEvent) -> bool {
        event.audience.reaches(user, |author| self.contains(author))
    }
}

/// The followees of `user` just after `position`, from the followees at a later position and
/// the user's routing records after `position` up to it (in id order).
pub fn followees_at(
    user: UserId,
    mut later: Followees,
    records_after: &[(EventId, FollowChange)],
    position: EventId,
) -> Followees {
    for (id, change) in records_after.iter().rev() {
        if *id > position && change.follower == user {
            later.undo(change);
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
            LogEntry::Event(event) if followees.receives(user, event) => selected.push(logged),
            LogEntry::Follow(_) | LogEntry::Account(_) | LogEntry::Event(_) | LogEntry::Skip => {}
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
                FollowChange {
                    follower: UserId(1),
                    followee: UserId(2),
                    following: true,
                },
            ),
            (
                EventId(8),
                FollowChange {
                    follower: UserId(1),
                    followee: UserId(4),
                    following: false,
                },
            ),
        ];
        let at = |p| followees_at(UserId(1), now.clone(), &records, EventId(p));
        assert_eq!(at(4), Followees::new([UserId(3), UserId(4)]));
        assert_eq!(at(5), Followees::new([UserId(2), UserId(3), UserId(4)]));
        assert_eq!(at(8), now);
    }
}
