//! Resume exactness against PostgreSQL: for each client, the durable ids it received across all
//! its sessions must be exactly the ids the event log addressed to its user after its starting
//! point. The audience rule (DESIGN §3): an event with `author_id = A` reaches A and A's
//! followers, one with `recipient_id = R` reaches R; only `post.created`, `post.deleted` and
//! `notification` are delivered (routing records and unknown kinds are not). Follows do not
//! change during the storm, so the `follows` table is every event's audience.

use std::collections::HashMap;

use anyhow::Context;
use serde::Serialize;

/// The kinds a client receives.
const DELIVERED: [&str; 3] = ["post.created", "post.deleted", "notification"];

/// A read-only connection to the server's database.
pub struct Database(tokio_postgres::Client);

impl Database {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .context("connecting to --database-url")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self(client))
    }

    /// The newest id in the event log (0 when empty).
    pub async fn head(&self) -> anyhow::Result<i64> {
        let row = self
            .0
            .query_one("SELECT coalesce(max(id), 0)::bigint FROM events", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Every delivered event after `after`, and whom `users` follow.
    pub async fn addressed(&self, after: i64, users: &[i64]) -> anyhow::Result<Addressed> {
        let kinds: Vec<String> = DELIVERED.iter().map(|&k| k.to_owned()).collect();
        let mut addressed = Addressed::default();
        for row in self
            .0
            .query(
                "SELECT id, author_id, recipient_id FROM events WHERE id > $1 AND kind = ANY($2)",
                &[&after, &kinds],
            )
            .await?
        {
            let id: i64 = row.try_get(0)?;
            match (
                row.try_get::<_, Option<i64>>(1)?,
                row.try_get::<_, Option<i64>>(2)?,
            ) {
                (Some(author), _) => addressed.by_author.entry(author).or_default().push(id),
                (None, Some(recipient)) => {
                    addressed.to_user.entry(recipient).or_default().push(id);
                }
                (None, None) => {}
            }
        }
        for row in self
            .0
            .query(
                "SELECT follower_id, followee_id FROM follows WHERE follower_id = ANY($1)",
                &[&users],
            )
            .await?
        {
            addressed
                .followees
                .entry(row.try_get(0)?)
                .or_default()
                .push(row.try_get(1)?);
        }
        Ok(addressed)
    }
}

/// The log's delivered events by whom they reach, and the follows.
#[derive(Default, Debug)]
pub struct Addressed {
    pub by_author: HashMap<i64, Vec<i64>>,
    pub to_user: HashMap<i64, Vec<i64>>,
    pub followees: HashMap<i64, Vec<i64>>,
}

impl Addressed {
    /// The ids addressed to `user` above `above`, ascending.
    pub fn expected(&self, user: i64, above: i64) -> Vec<i64> {
        let authors = std::iter::once(&user).chain(self.followees.get(&user).into_iter().flatten());
        let mut ids: Vec<i64> = authors
            .filter_map(|a| self.by_author.get(a))
            .chain(self.to_user.get(&user))
            .flatten()
            .copied()
            .filter(|&id| id > above)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// How one client's ids compare with what it should have had.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub expected: u64,
    /// Addressed to it and never received.
    pub missing: u64,
    /// Received (above the starting point) and not addressed to it.
    pub unexpected: u64,
}

/// Compares `received` (any order, repeats allowed) with `expected` (ascending, distinct),
/// both above `above`.
pub fn compare(expected: &[i64], received: &[i64], above: i64) -> Comparison {
    let mut got: Vec<i64> = received.iter().copied().filter(|&id| id > above).collect();
    got.sort_unstable();
    got.dedup();
    let missing = expected
        .iter()
        .filter(|id| got.binary_search(id).is_err())
        .count();
    let unexpected = got
        .iter()
        .filter(|id| expected.binary_search(id).is_err())
        .count();
    Comparison {
        expected: expected.len() as u64,
        missing: missing as u64,
        unexpected: unexpected as u64,
    }
}

/// The exactness part of the report.
#[derive(Serialize, Default, Debug, Clone)]
pub struct ResumeReport {
    /// Whether PostgreSQL was read (`--database-url`); without it only order and duplicates
    /// are checked, and `missing` and `unexpected` are null.
    pub checked: bool,
    /// Clients whose ids were compared: open when the storm stopped, and never told to resync.
    pub clients_checked: u64,
    pub expected: u64,
    pub missing: Option<u64>,
    pub unexpected: Option<u64>,
    /// Clients missing at least one id.
    pub clients_missing: Option<u64>,
    /// Ids received twice (over all clients, all sessions).
    pub duplicated: u64,
    /// Ids not above the one received before them.
    pub out_of_order: u64,
    /// `hello`s that said `resync_required` (their clients are not compared).
    pub resync_required: u64,
    /// Clients without an open session when the storm stopped (not compared).
    pub not_open_at_stop: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addressed() -> Addressed {
        Addressed {
            // 1 and 2 post; 3 gets a notification.
            by_author: [(1, vec![10, 12, 15]), (2, vec![11, 14])].into(),
            to_user: [(3, vec![13]), (1, vec![16])].into(),
            // 3 follows 1 and 2; 2 follows 1; 1 follows nobody.
            followees: [(3, vec![1, 2]), (2, vec![1])].into(),
        }
    }

    #[test]
    fn an_event_reaches_its_author_the_followers_and_its_recipient() {
        let log = addressed();
        assert_eq!(log.expected(1, 0), vec![10, 12, 15, 16]);
        assert_eq!(log.expected(2, 0), vec![10, 11, 12, 14, 15]);
        assert_eq!(log.expected(3, 0), vec![10, 11, 12, 13, 14, 15]);
        assert_eq!(log.expected(3, 12), vec![13, 14, 15]);
        assert_eq!(log.expected(4, 0), Vec::<i64>::new());
    }

    #[test]
    fn missing_and_unexpected_ids_are_counted_once() {
        let expected = [13, 14, 15];
        let exact = compare(&expected, &[13, 14, 15], 12);
        assert_eq!(
            exact,
            Comparison {
                expected: 3,
                missing: 0,
                unexpected: 0
            }
        );
        // A repeat is a duplicate (counted elsewhere), not a second delivery; ids at or below
        // the starting point are not compared.
        let off = compare(&expected, &[9, 13, 13, 16, 17], 12);
        assert_eq!(
            off,
            Comparison {
                expected: 3,
                missing: 2,
                unexpected: 2
            }
        );
    }
}
