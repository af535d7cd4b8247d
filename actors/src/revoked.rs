//! The revoked sign-in sessions (refresh-token families) this node knows of, until every
//! access token of each has expired. The server's revocation service fills it (from its own
//! logouts, other nodes' announcements and periodic reloads from PostgreSQL); the broker reads
//! it at `Connect`, so a socket authorised a moment before its session was revoked is refused
//! instead of missed.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::Instant;

use prometheus::IntGauge;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
