//! The broker's routing state: for each online user whose follow list is in, whom they follow
//! (and hide) at the broker's position in the log, and, inverted, each author's online
//! followers. Routing
//! records change it only as the sequencer releases them, in id order with the events.

use std::collections::{HashMap, HashSet};

use crate::audience::{Audience, Followees};
use crate::event_log::CommittedEvent;
use crate::ids::UserId;
use crate::log_record::{FilterChange, FollowChange};

#[derive(Debug, Default)]
pub struct Routing {
    users: HashMap<UserId, Followees>,
    /// Author → online followers whose lists are in.
    followers: HashMap<UserId, HashSet<UserId>>,
}

impl Routing {
    /// Whether `user`'s follow list is in.
    pub fn is_loaded(&self, user: UserId) -> bool {
        self.users.contains_key(&user)
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    pub fn followees(&self, user: UserId) -> Option<&Followees> {
        self.users.get(&user)
    }

    /// `user`'s follow list, at the broker's current position.
    pub fn load(&mut self, user: UserId, followees: Followees) {
        self.unload(user);
        for author in followees.iter() {
            self.followers.entry(author).or_default().insert(user);
        }
        self.users.insert(user, followees);
    }

    /// `user` left.
    pub fn unload(&mut self, user: UserId) {
        let Some(followees) = self.users.remove(&user) else {
            return;
        };
        for author in followees.iter() {
            self.forget_follower(author, user);
        }
    }

    fn forget_follower(&mut self, author: UserId, follower: UserId) {
        if let Some(followers) = self.followers.get_mut(&author) {
            followers.remove(&follower);
            if followers.is_empty() {
                self.followers.remove(&author);
            }
        }
    }

    /// The online followers of `author` whose lists are in.
    pub fn followers_of(&self, author: UserId) -> impl Iterator<Item = UserId> + '_ {
        self.followers.get(&author).into_iter().flatten().copied()
    }

    /// A released routing record.
    pub fn apply(&mut self, change: &FollowChange) {
        let Some(followees) = self.users.get_mut(&change.follower) else {
            return; // not online here, or its list is still loading (caught up from the log)
        };
        if !followees.apply(change) {
            return;
        }
        if change.following {
            self.followers
                .entry(change.followee)
                .or_default()
                .insert(change.follower);
        } else {
            self.forget_follower(change.followee, change.follower);
        }
    }

    /// A released filter record (a block, a mute, or their end): the index of followers does
    /// not change, the decision for each candidate does.
    pub fn apply_filter(&mut self, change: &FilterChange) {
        if let Some(followees) = self.users.get_mut(&change.user) {
            followees.apply_filter(change);
        }
    }

    /// The users here, lists loaded, whom `event` reaches: candidates from the index, each
    /// confirmed by the one decision ([`Audience::reaches`]).
    pub fn recipients<'a>(
        &'a self,
        event: &'a CommittedEvent,
    ) -> impl Iterator<Item = UserId> + 'a {
        let (direct, followers) = match event.audience {
            Audience::User(user) => (user, None),
            Audience::FollowersOf(author) => (author, self.followers.get(&author)),
        };
        std::iter::once(direct)
            .chain(followers.into_iter().flatten().copied())
            .filter(move |user| {
                self.users
                    .get(user)
                    .is_some_and(|followees| followees.receives(*user, event))
            })
    }

    /// Whether anyone here may receive events of `audience` (to skip serialising for nobody).
    pub fn anyone_for(&self, audience: Audience) -> bool {
        match audience {
            Audience::User(user) => self.users.contains_key(&user),
            Audience::FollowersOf(author) => {
                self.users.contains_key(&author) || self.followers.contains_key(&author)
            }
        }
    }
}
