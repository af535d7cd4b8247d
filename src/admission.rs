//! Websocket admission: whether this node takes an upgrade now, decided before the 101.
//!
//! - The node: past `WS_MAX_SESSIONS` open sockets, or while `WS_MAX_STARTING` sessions are
//!   still registering and replaying, an upgrade is refused with 503 and a jittered
//!   `Retry-After`, so a reconnect storm waits at the door instead of inside the node.
//! - The caller: at most `WS_MAX_PER_USER` sockets per user and `WS_MAX_PER_IP` per client IP
//!   on this node at once; past that, 429 with `Retry-After`.
//!
//! An admitted upgrade holds a [`Slot`] for as long as its socket lives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex};

use aisocial_actors::ids::UserId;
use aisocial_actors::starting::Starting;
use prometheus::IntCounterVec;

use crate::config::admission::AdmissionLimits;
use crate::problem::ApiError;

static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    aisocial_actors::meter::labelled_counter(
        "aisocial_websocket_admission_refused_total",
        "Websocket upgrades refused before the 101, by reason.",
        &["reason"],
    )
});

#[derive(Debug, Default)]
struct Counts {
    sessions: usize,
    users: HashMap<UserId, usize>,
    ips: HashMap<IpAddr, usize>,
}

/// This node's admission.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    starting: Arc<Starting>,
    counts: Mutex<Counts>,
}

impl Admission {
    pub fn new(limits: AdmissionLimits, starting: Arc<Starting>) -> Arc<Self> {
        for reason in ["node_full", "node_busy", "per_user", "per_ip"] {
            REFUSED.with_label_values(&[reason]);
        }
        Arc::new(Self {
            limits,
            starting,
            counts: Mutex::new(Counts::default()),
        })
    }

    pub fn sessions(&self) -> usize {
        self.counts().sessions
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one socket of `user` from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, user: UserId, ip: Option<IpAddr>) -> Result<Slot, ApiError> {
        let mut counts = self.counts();
        if counts.sessions >= self.limits.max_sessions {
            return Err(refuse_busy(
                "node_full",
                "this node holds as many websockets as it can; retry (another node may answer)",
            ));
        }
        if self.starting.count() >= self.limits.max_starting {
            return Err(refuse_busy(
                "node_busy",
                "this node is starting many websockets at once; retry shortly",
            ));
        }
        if counts.users.get(&user).copied().unwrap_or(0) >= self.limits.per_user {
            REFUSED.with_label_values(&["per_user"]).inc();
            return Err(ApiError::Busy {
                code: "too_many_sockets",
                detail: format!(
                    "at most {} websockets per user at once; close one first",
                    self.limits.per_user
                ),
                retry_after_secs: jittered(),
            });
        }
        if let Some(ip) = ip
            && counts.ips.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip
        {
            REFUSED.with_label_values(&["per_ip"]).inc();
            return Err(ApiError::Busy {
                code: "too_many_sockets",
                detail: format!(
                    "at most {} websockets per address at once",
                    self.limits.per_ip
                ),
                retry_after_secs: jittered(),
            });
        }
        counts.sessions += 1;
        *counts.users.entry(user).or_default() += 1;
        if let Some(ip) = ip {
            *counts.ips.entry(ip).or_default() += 1;
        }
        Ok(Slot {
            admission: Arc::clone(self),
            user,
            ip,
        })
    }

    fn release(&self, user: UserId, ip: Option<IpAddr>) {
        let mut counts = self.counts();
        counts.sessions = counts.sessions.saturating_sub(1);
        decrement(&mut counts.users, user);
        if let Some(ip) = ip {
            decrement(&mut counts.ips, ip);
        }
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

/// 1–3 s, so that clients refused together do not come back together.
fn jittered() -> u64 {
    1 + rand::random::<u64>() % 3
}

fn refuse_busy(reason: &'static str, detail: &str) -> ApiError {
    REFUSED.with_label_values(&[reason]).inc();
    ApiError::Unavailable {
        code: "unavailable",
        detail: detail.into(),
        retry_after_secs: u32::try_from(jittered()).unwrap_or(1),
    }
}

/// One admitted socket; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    user: UserId,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.user, self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_sessions: usize, per_user: usize, per_ip: usize) -> Arc<Admission> {
        Admission::new(
            AdmissionLimits {
                max_sessions,
                max_starting: 2,
                per_user,
                per_ip,
            },
            Arc::new(Starting::default()),
        )
    }

    fn status(e: &ApiError) -> u16 {
        actix_web::ResponseError::status_code(e).as_u16()
    }

    #[test]
    fn caps_per_user_and_per_ip_answer_429_and_free_on_drop() {
        let a = admission(100, 2, 3);
        let ip: Option<IpAddr> = "192.0.2.7".parse().ok();
        let one = a.admit(UserId(1), ip);
        let two = a.admit(UserId(1), ip);
        assert!(one.is_ok() && two.is_ok());
        let third = a.admit(UserId(1), ip);
        assert!(matches!(&third, Err(e) if status(e) == 429));
        let other = a.admit(UserId(2), ip);
        assert!(other.is_ok());
        let by_ip = a.admit(UserId(3), ip);
        assert!(matches!(&by_ip, Err(e) if status(e) == 429));
        drop(one);
        assert!(a.admit(UserId(1), None).is_ok());
        drop((two, other));
        assert_eq!(a.sessions(), 0);
    }

    #[test]
    fn a_full_or_busy_node_answers_503() {
        let a = admission(1, 10, 10);
        let held = a.admit(UserId(1), None);
        assert!(held.is_ok());
        assert!(matches!(a.admit(UserId(2), None), Err(e) if status(&e) == 503));
        drop(held);
        let starting = Arc::clone(&a.starting);
        let _s = (starting.begin(), starting.begin());
        assert!(matches!(a.admit(UserId(2), None), Err(e) if status(&e) == 503));
    }
}
