//! Who may not be let in, as this node knows it: the revoked sign-in sessions (refresh-token
//! families), until every access token of each has expired, and the suspended accounts.
//!
//! The server's revocation service fills the families (from its own logouts, other nodes'
//! announcements and periodic reloads from PostgreSQL). Suspensions come from the log's
//! `route.account` records as the broker releases them, and from the same reloads. The broker
//! reads both at `Connect`, so a socket authorised a moment before is refused, not missed.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, RwLock};
use std::time::Instant;

use prometheus::IntGauge;

use crate::ids::UserId;
use crate::meter;

static KNOWN: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_revoked_families",
        "Revoked sign-in sessions this node remembers (each until its access tokens expire).",
    )
});

/// Family → when it may be forgotten. Bounded by time: an entry lives as long as an access
/// token of its family could, so the set holds the revocations of that window and no more.
#[derive(Debug, Default)]
pub struct RevokedFamilies {
    families: RwLock<HashMap<i64, Instant>>,
}

impl RevokedFamilies {
    /// Remembers `family` until `until`; true when it was not known (or had been forgotten).
    pub fn insert(&self, family: i64, until: Instant) -> bool {
        let now = Instant::now();
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        families.retain(|_, forget_at| *forget_at > now);
        let new = match families.get_mut(&family) {
            Some(forget_at) => {
                *forget_at = (*forget_at).max(until);
                false
            }
            None => {
                families.insert(family, until);
                true
            }
        };
        KNOWN.set(i64::try_from(families.len()).unwrap_or(i64::MAX));
        new
    }

    pub fn contains(&self, family: i64) -> bool {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        families
            .get(&family)
            .is_some_and(|forget_at| *forget_at > Instant::now())
    }
}

static SUSPENDED: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_suspended_users",
        "Suspended accounts this node knows of (their tokens and sockets are refused).",
    )
});

/// The suspended accounts. Bounded by what PostgreSQL holds: each reload replaces the set.
#[derive(Debug, Default)]
pub struct SuspendedUsers {
    state: RwLock<Suspensions>,
}

#[derive(Debug, Default)]
struct Suspensions {
    users: HashSet<UserId>,
    /// When a log record last changed each user's state here: a reload read before that
    /// instant is older than the record and must not undo it.
    changed_at: HashMap<UserId, Instant>,
}

impl SuspendedUsers {
    pub fn contains(&self, user: UserId) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.users.contains(&user)
    }

    /// A `route.account` record, released in log order; true when it changed anything.
    pub fn apply(&self, user: UserId, suspended: bool) -> bool {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.changed_at.insert(user, Instant::now());
        let changed = if suspended {
            state.users.insert(user)
        } else {
            state.users.remove(&user)
        };
        SUSPENDED.set(i64::try_from(state.users.len()).unwrap_or(i64::MAX));
        changed
    }

    /// What PostgreSQL held when a read that began at `read_started` looked: it replaces the
    /// set, except for users a log record changed after that instant (the record is newer).
    pub fn reload(&self, suspended: HashSet<UserId>, read_started: Instant) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.changed_at.retain(|_, at| *at > read_started);
        let newer: Vec<(UserId, bool)> = state
            .changed_at
            .keys()
            .map(|u| (*u, state.users.contains(u)))
            .collect();
        state.users = suspended;
        for (user, suspended) in newer {
            if suspended {
                state.users.insert(user);
            } else {
                state.users.remove(&user);
            }
        }
        SUSPENDED.set(i64::try_from(state.users.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_reload_replaces_the_suspensions_but_never_undoes_a_newer_record() {
        let suspended = SuspendedUsers::default();
        assert!(suspended.apply(UserId(1), true));
        assert!(!suspended.apply(UserId(1), true), "already suspended");
        let before_the_records = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(suspended.apply(UserId(2), true));
        assert!(suspended.apply(UserId(1), false));
        // A read that began before both records: it still saw 1 suspended and 2 not, and 3.
        suspended.reload(HashSet::from([UserId(1), UserId(3)]), before_the_records);
        assert!(!suspended.contains(UserId(1)), "the unsuspension is newer");
        assert!(suspended.contains(UserId(2)), "the suspension is newer");
        assert!(suspended.contains(UserId(3)));
        // A later read is the truth.
        suspended.reload(HashSet::from([UserId(3)]), Instant::now());
        assert!(!suspended.contains(UserId(2)));
        assert!(suspended.contains(UserId(3)));
    }

    #[test]
    fn a_family_is_known_until_its_time_and_only_new_ones_count() {
        let revoked = RevokedFamilies::default();
        let later = Instant::now() + Duration::from_secs(60);
        assert!(revoked.insert(7, later));
        assert!(!revoked.insert(7, later), "already known");
        assert!(revoked.contains(7));
        assert!(!revoked.contains(8));
        assert!(revoked.insert(8, Instant::now()), "new, though already due");
        assert!(
            !revoked.contains(8),
            "forgotten once every token of it expired"
        );
        assert!(revoked.insert(9, later));
        assert_eq!(
            revoked.families.read().map(|f| f.len()).unwrap_or_default(),
            2,
            "expired entries are dropped"
        );
    }
}
