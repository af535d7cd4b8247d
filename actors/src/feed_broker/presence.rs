//! Who is online anywhere: users here, and users on other nodes as those nodes announced them.
//! Every node sends a heartbeat with the number of users online there; a node not heard from
//! within the expiry (it died without announcing) stops counting its users, and a node whose
//! count disagrees with what was heard of it is asked for its whole list.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::committed::PresenceChange;
use crate::ids::UserId;

#[derive(Debug)]
struct Node {
    last_heard: Instant,
    users: HashMap<UserId, String>,
}

#[derive(Debug, Default)]
pub struct Presence {
    here: HashMap<UserId, String>,
    /// User → the other nodes it is online on.
    elsewhere: HashMap<UserId, HashSet<String>>,
    nodes: HashMap<String, Node>,
}

impl Presence {
    pub fn is_here(&self, user: UserId) -> bool {
        self.here.contains_key(&user)
    }

    /// Online here or on a node that said so.
    pub fn online(&self, user: UserId) -> bool {
        self.here.contains_key(&user) || self.elsewhere.contains_key(&user)
    }

    pub fn here(&self) -> impl Iterator<Item = (UserId, &str)> + '_ {
        self.here.iter().map(|(u, h)| (*u, h.as_str()))
    }

    pub fn here_count(&self) -> usize {
        self.here.len()
    }

    /// `user` came online here. Answers the change to tell followers, if they did not know.
    pub fn arrived(&mut self, user: UserId, handle: String) -> Option<PresenceChange> {
        let was = self.online(user);
        self.here.insert(user, handle.clone());
        (!was).then_some(PresenceChange {
            user,
            handle,
            online: true,
        })
    }

    /// `user`'s last session here ended (after the debounce). Answers the change to publish to
    /// other nodes, and whether followers here should hear it (gone everywhere).
    pub fn departed(&mut self, user: UserId) -> Option<(PresenceChange, bool)> {
        let handle = self.here.remove(&user)?;
        let change = PresenceChange {
            user,
            handle,
            online: false,
        };
        Some((change, !self.online(user)))
    }

    /// A node's announcement. Answers whether followers here should hear it.
    pub fn remote(&mut self, node: &str, change: &PresenceChange, now: Instant) -> bool {
        let before = self.online(change.user);
        let entry = self.nodes.entry(node.to_owned()).or_insert_with(|| Node {
            last_heard: now,
            users: HashMap::new(),
        });
        entry.last_heard = now;
        let nodes = self.elsewhere.entry(change.user).or_default();
        if change.online {
            nodes.insert(node.to_owned());
            entry.users.insert(change.user, change.handle.clone());
        } else {
            nodes.remove(node);
            if nodes.is_empty() {
                self.elsewhere.remove(&change.user);
            }
            entry.users.remove(&change.user);
        }
        before != self.online(change.user)
    }

    /// A node's heartbeat saying how many users it has online. Answers whether its list should
    /// be asked for (it differs from what was heard, or the node is new).
    pub fn heartbeat(&mut self, node: &str, online: usize, now: Instant) -> bool {
        match self.nodes.get_mut(node) {
            Some(known) => {
                known.last_heard = now;
                known.users.len() != online
            }
            None => {
                self.nodes.insert(
                    node.to_owned(),
                    Node {
                        last_heard: now,
                        users: HashMap::new(),
                    },
                );
                online > 0
            }
        }
    }

    /// A node's whole list, answering a request: replaces what was heard of it. Answers the
    /// changes followers here should hear.
    pub fn replace(
        &mut self,
        node: &str,
        users: Vec<(UserId, String)>,
        now: Instant,
    ) -> Vec<PresenceChange> {
        let mut affected: HashMap<UserId, (String, bool)> = self
            .nodes
            .get(node)
            .map(|n| n.users.clone())
            .unwrap_or_default()
            .into_iter()
            .chain(users.iter().cloned())
            .map(|(user, handle)| (user, (handle, false)))
            .collect();
        for (user, (_, before)) in affected.iter_mut() {
            *before = self.online(*user);
        }
        self.forget(node);
        self.nodes.insert(
            node.to_owned(),
            Node {
                last_heard: now,
                users: HashMap::new(),
            },
        );
        for (user, handle) in users {
            let change = PresenceChange {
                user,
                handle,
                online: true,
            };
            self.remote(node, &change, now);
        }
        affected
            .into_iter()
            .filter(|(user, (_, before))| *before != self.online(*user))
            .map(|(user, (handle, _))| PresenceChange {
                user,
                handle,
                online: self.online(user),
            })
            .collect()
    }

    /// Nodes not heard from within `expiry` stop counting their users. Answers the changes
    /// followers here should hear.
    pub fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<PresenceChange> {
        let silent: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| now.saturating_duration_since(n.last_heard) > expiry)
            .map(|(name, _)| name.clone())
            .collect();
        let mut announce = Vec::new();
        for node in silent {
            announce.extend(self.forget(&node));
        }
        announce
    }

    /// Drops everything heard of `node`; answers who went offline everywhere.
    fn forget(&mut self, node: &str) -> Vec<PresenceChange> {
        let Some(known) = self.nodes.remove(node) else {
            return Vec::new();
        };
        let mut announce = Vec::new();
        for (user, handle) in known.users {
            if let Some(nodes) = self.elsewhere.get_mut(&user) {
                nodes.remove(node);
                if nodes.is_empty() {
                    self.elsewhere.remove(&user);
                }
            }
            if !self.online(user) {
                announce.push(PresenceChange {
                    user,
                    handle,
                    online: false,
                });
            }
        }
        announce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(user: i64, online: bool) -> PresenceChange {
        PresenceChange {
            user: UserId(user),
            handle: format!("u{user}"),
            online,
        }
    }

    #[test]
    fn a_silent_node_stops_counting_its_users() {
        let mut p = Presence::default();
        let t0 = Instant::now();
        assert!(p.remote("b", &change(1, true), t0));
        assert!(p.remote("c", &change(2, true), t0));
        assert!(!p.remote("c", &change(1, true), t0));
        assert!(p.online(UserId(1)));
        let later = t0 + Duration::from_secs(4);
        assert!(!p.heartbeat("c", 2, later));
        let gone = p.expire(later, Duration::from_secs(3));
        // b went silent: user 1 is still online on c, nobody else was only on b.
        assert!(gone.is_empty());
        assert!(p.online(UserId(1)));
        let gone = p.expire(later + Duration::from_secs(4), Duration::from_secs(3));
        let mut users: Vec<i64> = gone.iter().map(|c| c.user.0).collect();
        users.sort_unstable();
        assert_eq!(users, vec![1, 2]);
        assert!(!p.online(UserId(1)) && !p.online(UserId(2)));
    }

    #[test]
    fn a_heartbeat_that_disagrees_asks_for_the_list_which_replaces_it() {
        let mut p = Presence::default();
        let t0 = Instant::now();
        assert!(p.heartbeat("b", 2, t0), "a new node with users is asked");
        assert!(p.remote("b", &change(1, true), t0));
        assert!(p.heartbeat("b", 2, t0), "one of two heard: ask");
        let changes = p.replace(
            "b",
            vec![(UserId(1), "u1".into()), (UserId(3), "u3".into())],
            t0,
        );
        assert_eq!(changes, vec![change(3, true)]);
        assert!(!p.heartbeat("b", 2, t0));
        assert!(p.online(UserId(3)));
    }

    #[test]
    fn here_and_elsewhere_together_decide_what_followers_hear() {
        let mut p = Presence::default();
        let t0 = Instant::now();
        assert!(p.arrived(UserId(1), "u1".into()).is_some());
        assert!(!p.remote("b", &change(1, true), t0));
        let (change_out, tell) = p
            .departed(UserId(1))
            .unwrap_or_else(|| (change(0, false), true));
        assert_eq!(change_out.user, UserId(1));
        assert!(!tell, "still online on b");
        assert!(p.remote("b", &change(1, false), t0));
    }
}
