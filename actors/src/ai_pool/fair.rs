//! A bounded queue that is fair across users: one waiting job per user in turn.
//!
//! Each user has a FIFO of their own jobs; users take turns in the order they first queued.
//! A user with 50 jobs waiting therefore delays another user's single job by at most one job,
//! not 50. The queue is bounded in total and per user.

use std::collections::{HashMap, VecDeque};

use crate::ids::UserId;

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The whole queue is full.
    Full,
    /// This user already has as many jobs waiting as one user may.
    UserFull,
}

#[derive(Debug)]
pub struct FairQueue<T> {
    by_user: HashMap<UserId, VecDeque<T>>,
    /// Users with jobs waiting, in turn order.
    turns: VecDeque<UserId>,
    len: usize,
    capacity: usize,
    per_user: usize,
}

impl<T> FairQueue<T> {
    pub fn new(capacity: usize, per_user: usize) -> Self {
        Self {
            by_user: HashMap::new(),
            turns: VecDeque::new(),
            len: 0,
            capacity: capacity.max(1),
            per_user: per_user.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Users with at least one job waiting.
    pub fn users_waiting(&self) -> usize {
        self.turns.len()
    }

    /// Jobs `user` has waiting.
    pub fn waiting_for(&self, user: UserId) -> usize {
        self.by_user.get(&user).map_or(0, VecDeque::len)
    }

    pub fn push(&mut self, user: UserId, job: T) -> Result<(), (Refused, T)> {
        if self.len >= self.capacity {
            return Err((Refused::Full, job));
        }
        let jobs = self.by_user.entry(user).or_default();
        if jobs.len() >= self.per_user {
            return Err((Refused::UserFull, job));
        }
        if jobs.is_empty() {
            self.turns.push_back(user);
        }
        jobs.push_back(job);
        self.len += 1;
        Ok(())
    }

    /// The next user's oldest job; that user goes to the back of the turn order.
    pub fn pop(&mut self) -> Option<(UserId, T)> {
        let user = self.turns.pop_front()?;
        let jobs = self.by_user.get_mut(&user)?;
        let job = jobs.pop_front()?;
        self.len -= 1;
        if jobs.is_empty() {
            self.by_user.remove(&user);
        } else {
            self.turns.push_back(user);
        }
        Some((user, job))
    }

    /// Takes every job out (at shutdown, or when the upstream quota is gone for the day).
    pub fn drain(&mut self) -> Vec<(UserId, T)> {
        let mut out = Vec::with_capacity(self.len);
        while let Some(next) = self.pop() {
            out.push(next);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heavy_user_does_not_delay_a_light_one_behind_all_their_jobs() {
        let mut queue = FairQueue::new(100, 60);
        let heavy = UserId(1);
        let light = UserId(2);
        for n in 0..50 {
            assert!(queue.push(heavy, n).is_ok());
        }
        assert!(queue.push(light, 1000).is_ok());
        let order: Vec<i64> = std::iter::from_fn(|| queue.pop().map(|(u, _)| u.0))
            .take(3)
            .collect();
        assert_eq!(order, vec![1, 2, 1]);
        assert_eq!(queue.len(), 48);
    }

    #[test]
    fn each_users_jobs_stay_in_order() {
        let mut queue = FairQueue::new(10, 10);
        for (user, job) in [(1, 'a'), (1, 'b'), (2, 'x'), (1, 'c'), (2, 'y')] {
            assert!(queue.push(UserId(user), job).is_ok());
        }
        let jobs: String = queue.drain().into_iter().map(|(_, j)| j).collect();
        assert_eq!(jobs, "axbyc");
        assert!(queue.is_empty());
        assert_eq!(queue.users_waiting(), 0);
    }

    #[test]
    fn bounded_in_total_and_per_user() {
        let mut queue = FairQueue::new(3, 2);
        assert!(queue.push(UserId(1), 1).is_ok());
        assert!(queue.push(UserId(1), 2).is_ok());
        assert_eq!(
            queue.push(UserId(1), 3).err().map(|e| e.0),
            Some(Refused::UserFull)
        );
        assert!(queue.push(UserId(2), 4).is_ok());
        assert_eq!(
            queue.push(UserId(3), 5).err().map(|e| e.0),
            Some(Refused::Full)
        );
        assert_eq!(queue.waiting_for(UserId(1)), 2);
    }
}
