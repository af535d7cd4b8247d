//! The oracle: from PostgreSQL's event log alone, which durable ids each reader had to receive,
//! compared with what it did receive.
//!
//! An event with `author_id = A` is addressed to A and to every F who follows A *as of that
//! event*: the latest `route.follow` record for (F, A) before it, or, when there is none, the
//! follow table as the run found it at its start. An event with `recipient_id = R` is
//! addressed to R. Only `post.created`, `post.deleted` and `notification` reach clients; any
//! other kind is skipped. Applying every routing record in id order to the start snapshot must
//! give exactly the final follow table, or the log disagrees with the truth.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use serde_json::Value;

/// The kinds a client is sent.
pub const CLIENT_VISIBLE: [&str; 3] = ["post.created", "post.deleted", "notification"];
/// A change of who follows whom, in the same log (never sent to clients).
pub const ROUTE_FOLLOW: &str = "route.follow";
/// How many lines of detail a verdict keeps (the counts are always whole), and how many of
/// them one reader may take.
const MAX_FINDINGS: usize = 60;
const FINDINGS_PER_READER: usize = 6;

/// (follower, followee).
pub type Pair = (i64, i64);

/// One row of `events`.
#[derive(Clone, Debug)]
pub struct LogEvent {
    pub id: i64,
    pub kind: String,
    pub author: Option<i64>,
    pub recipient: Option<i64>,
    pub payload: Value,
}

/// Where the run started: the log head and the follow table, read in one snapshot.
#[derive(Clone, Debug, Default)]
pub struct Start {
    pub last_id: i64,
    pub follows: BTreeSet<Pair>,
}

/// A durable frame as a reader received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub id: i64,
    pub kind: String,
}

/// Everything one reader received over its whole life, in order.
#[derive(Clone, Debug, Default)]
pub struct ReaderLog {
    pub user: i64,
    pub handle: String,
    pub received: Vec<Received>,
}

/// What the oracle found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub events_in_log: usize,
    pub client_visible: usize,
    pub routing_records: usize,
    /// Kinds neither client-visible nor routing records, with their counts.
    pub skipped_kinds: BTreeMap<String, usize>,
    pub deliveries_expected: usize,
    pub deliveries_seen: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub out_of_order: usize,
    pub unexpected: usize,
    /// Ids past the head the check was taken at (delivered after the run's end: not judged).
    pub beyond_head: usize,
    /// The log itself is wrong (a gap, a malformed record, or it disagrees with the follow table).
    pub log_errors: Vec<String>,
    /// The first lines of detail about lost, duplicated, out-of-order and unexpected ids.
    pub findings: Vec<String>,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.log_errors.is_empty()
            && self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.unexpected == 0
    }

    /// Keeps a line about a reader that has had `noted` lines so far.
    fn note(&mut self, noted: &mut usize, line: String) {
        *noted += 1;
        if *noted > FINDINGS_PER_READER {
            return;
        }
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(line);
        } else if self.findings.len() == MAX_FINDINGS {
            self.findings
                .push("… (more left out; the counts are whole)".to_owned());
        }
    }
}

/// The follow graph replayed along the log, with each pair's history for the reports.
struct Routing<'a> {
    start: &'a BTreeSet<Pair>,
    now: BTreeSet<Pair>,
    /// Every record per pair: (record id, following).
    history: HashMap<Pair, Vec<(i64, bool)>>,
    /// Followers per followee, as of the current position.
    followers: HashMap<i64, BTreeSet<i64>>,
}

impl<'a> Routing<'a> {
    fn new(start: &'a BTreeSet<Pair>) -> Self {
        let mut followers: HashMap<i64, BTreeSet<i64>> = HashMap::new();
        for &(follower, followee) in start {
            followers.entry(followee).or_default().insert(follower);
        }
        Self {
            start,
            now: start.clone(),
            history: HashMap::new(),
            followers,
        }
    }

    fn apply(&mut self, id: i64, follower: i64, followee: i64, following: bool) {
        let pair = (follower, followee);
        self.history.entry(pair).or_default().push((id, following));
        let set = self.followers.entry(followee).or_default();
        if following {
            self.now.insert(pair);
            set.insert(follower);
        } else {
            self.now.remove(&pair);
            set.remove(&follower);
        }
    }

    /// Why `follower` did or did not follow `followee` at event `at`: the snapshot and the
    /// records for the pair (those after `at` marked as such).
    fn explain(&self, follower: i64, followee: i64, at: i64) -> String {
        let pair = (follower, followee);
        let mut text = format!(
            "start snapshot: {}",
            if self.start.contains(&pair) {
                "following"
            } else {
                "not following"
            }
        );
        match self.history.get(&pair) {
            None => text.push_str("; no route.follow record for the pair"),
            Some(records) => {
                text.push_str("; route.follow records:");
                for (id, following) in records.iter().take(8) {
                    let verb = if *following { "follow" } else { "unfollow" };
                    let when = if *id < at { "" } else { " (after)" };
                    let _ = write!(text, " #{id} {verb}{when}");
                }
                if records.len() > 8 {
                    let _ = write!(text, " … ({} in all)", records.len());
                }
            }
        }
        text
    }
}

/// A `route.follow` record's (follower, followee, following), or why it is malformed.
fn route_record(event: &LogEvent) -> Result<(i64, i64, bool), String> {
    let field = |name: &str| event.payload.get(name);
    let follower = field("follower").and_then(Value::as_i64);
    let followee = field("followee").and_then(Value::as_i64);
    let following = field("following").and_then(Value::as_bool);
    let (Some(follower), Some(followee), Some(following)) = (follower, followee, following) else {
        return Err(format!(
            "route.follow #{} has no follower/followee/following: {}",
            event.id, event.payload
        ));
    };
    if event.recipient != Some(follower) || event.author.is_some() {
        return Err(format!(
            "route.follow #{} is addressed to author {:?} / recipient {:?}, not to its follower {follower}",
            event.id, event.author, event.recipient
        ));
    }
    Ok((follower, followee, following))
}

fn describe(event: &LogEvent) -> String {
    match (event.author, event.recipient) {
        (Some(a), _) => format!("#{} {} by author {a}", event.id, event.kind),
        (None, Some(r)) => format!("#{} {} to user {r}", event.id, event.kind),
        (None, None) => format!("#{} {} (no audience)", event.id, event.kind),
    }
}

/// Judges every reader against the log `(start.last_id, head]` (`log` holds those rows in id
/// order) and the follow table at the end.
pub fn check(
    start: &Start,
    head: i64,
    log: &[LogEvent],
    final_follows: &BTreeSet<Pair>,
    readers: &[ReaderLog],
) -> Verdict {
    let mut verdict = Verdict {
        events_in_log: log.len(),
        ..Verdict::default()
    };
    // Dense ids: every id of the range once, in order.
    let mut want = start.last_id + 1;
    for event in log {
        if event.id != want {
            verdict.log_errors.push(format!(
                "the log is not dense: #{} follows #{} (ids ({}, {head}])",
                event.id,
                want - 1,
                start.last_id
            ));
            break;
        }
        want += 1;
    }
    if want != head + 1 && verdict.log_errors.is_empty() {
        verdict.log_errors.push(format!(
            "the log ends at #{} but event_counter says {head}",
            want - 1
        ));
    }

    // Who had to receive what, event by event.
    let reader_users: HashSet<i64> = readers.iter().map(|r| r.user).collect();
    let mut expected: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut routing = Routing::new(&start.follows);
    let by_id: HashMap<i64, &LogEvent> = log.iter().map(|e| (e.id, e)).collect();
    for event in log {
        if event.kind == ROUTE_FOLLOW {
            verdict.routing_records += 1;
            match route_record(event) {
                Ok((follower, followee, following)) => {
                    routing.apply(event.id, follower, followee, following);
                }
                Err(e) => verdict.log_errors.push(e),
            }
            continue;
        }
        if !CLIENT_VISIBLE.contains(&event.kind.as_str()) {
            *verdict.skipped_kinds.entry(event.kind.clone()).or_default() += 1;
            continue;
        }
        verdict.client_visible += 1;
        let mut audience = BTreeSet::new();
        match (event.author, event.recipient) {
            (Some(author), _) => {
                audience.insert(author);
                if let Some(followers) = routing.followers.get(&author) {
                    audience.extend(followers.iter().copied());
                }
            }
            (None, Some(recipient)) => {
                audience.insert(recipient);
            }
            (None, None) => verdict
                .log_errors
                .push(format!("#{} {} has no audience", event.id, event.kind)),
        }
        for user in audience.iter().filter(|u| reader_users.contains(u)) {
            expected.entry(*user).or_default().push(event.id);
        }
    }
    if routing.now != *final_follows {
        let extra: Vec<&Pair> = routing.now.difference(final_follows).take(10).collect();
        let missing: Vec<&Pair> = final_follows.difference(&routing.now).take(10).collect();
        let hint = if verdict.routing_records == 0 {
            " (there is no route.follow record at all: a server that does not write them?)"
        } else {
            ""
        };
        verdict.log_errors.push(format!(
            "the log disagrees with the follow table: start snapshot + {} route.follow records \
             give {} follows, the table has {}; (follower, followee) only in the replay: {extra:?}; \
             only in the table: {missing:?}{hint}",
            verdict.routing_records,
            routing.now.len(),
            final_follows.len()
        ));
    }

    // Each reader against its expectation.
    for reader in readers {
        let want: BTreeSet<i64> = expected
            .get(&reader.user)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        verdict.deliveries_expected += want.len();
        let mut noted = 0;
        let mut seen: BTreeSet<i64> = BTreeSet::new();
        let mut highest = i64::MIN;
        for (position, frame) in reader.received.iter().enumerate() {
            if !seen.insert(frame.id) {
                verdict.duplicated += 1;
                verdict.note(
                    &mut noted,
                    format!(
                        "{}: #{} ({}) delivered again at position {position}",
                        reader.handle, frame.id, frame.kind
                    ),
                );
                continue;
            }
            if frame.id < highest {
                verdict.out_of_order += 1;
                verdict.note(
                    &mut noted,
                    format!(
                        "{}: #{} ({}) after #{highest} at position {position}",
                        reader.handle, frame.id, frame.kind
                    ),
                );
            }
            highest = highest.max(frame.id);
            if frame.id > head {
                verdict.beyond_head += 1;
                continue;
            }
            verdict.deliveries_seen += 1;
            if !want.contains(&frame.id) {
                verdict.unexpected += 1;
                let line = match by_id.get(&frame.id) {
                    None => format!(
                        "{}: #{} ({}) is not in the log range ({}, {head}]",
                        reader.handle, frame.id, frame.kind, start.last_id
                    ),
                    Some(event) => {
                        let why = event.author.map_or_else(
                            || "not its recipient".to_owned(),
                            |a| routing.explain(reader.user, a, event.id),
                        );
                        format!(
                            "{}: unexpected {} (not addressed to user {}: {why})",
                            reader.handle,
                            describe(event),
                            reader.user
                        )
                    }
                };
                verdict.note(&mut noted, line);
            } else if let Some(event) = by_id.get(&frame.id)
                && event.kind != frame.kind
            {
                verdict.unexpected += 1;
                verdict.note(
                    &mut noted,
                    format!(
                        "{}: #{} arrived as {} but the log says {}",
                        reader.handle, frame.id, frame.kind, event.kind
                    ),
                );
            }
        }
        for id in want.difference(&seen) {
            verdict.lost += 1;
            let Some(event) = by_id.get(id) else {
                continue;
            };
            let why = event.author.map_or_else(
                || "its recipient".to_owned(),
                |a| {
                    if a == reader.user {
                        "its author".to_owned()
                    } else {
                        routing.explain(reader.user, a, event.id)
                    }
                },
            );
            let around = reader
                .received
                .iter()
                .map(|r| r.id)
                .filter(|r| (r - id).abs() <= 20)
                .collect::<Vec<_>>();
            verdict.note(
                &mut noted,
                format!(
                    "{} (user {}): lost {} ({why}); its ids near it: {around:?}",
                    reader.handle,
                    reader.user,
                    describe(event)
                ),
            );
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(id: i64, author: i64) -> LogEvent {
        LogEvent {
            id,
            kind: "post.created".to_owned(),
            author: Some(author),
            recipient: None,
            payload: Value::Null,
        }
    }

    fn route(id: i64, follower: i64, followee: i64, following: bool) -> LogEvent {
        LogEvent {
            id,
            kind: ROUTE_FOLLOW.to_owned(),
            author: None,
            recipient: Some(follower),
            payload: serde_json::json!({
                "follower": follower, "followee": followee, "following": following
            }),
        }
    }

    fn reader(user: i64, ids: &[i64]) -> ReaderLog {
        ReaderLog {
            user,
            handle: format!("reader_{user}"),
            received: ids
                .iter()
                .map(|&id| Received {
                    id,
                    kind: "post.created".to_owned(),
                })
                .collect(),
        }
    }

    /// Author 1; user 2 follows from the start, user 3 follows at #12 and leaves at #14.
    fn scenario() -> (Start, Vec<LogEvent>, BTreeSet<Pair>) {
        let start = Start {
            last_id: 10,
            follows: BTreeSet::from([(2, 1)]),
        };
        let log = vec![
            post(11, 1),
            route(12, 3, 1, true),
            post(13, 1),
            route(14, 3, 1, false),
            post(15, 1),
        ];
        (start, log, BTreeSet::from([(2, 1)]))
    }

    #[test]
    fn the_audience_is_the_one_at_each_event() {
        let (start, log, end) = scenario();
        let readers = [
            reader(1, &[11, 13, 15]),
            reader(2, &[11, 13, 15]),
            reader(3, &[13]),
        ];
        let verdict = check(&start, 15, &log, &end, &readers);
        assert!(verdict.valid(), "{verdict:?}");
        assert_eq!(verdict.deliveries_expected, 7);
        assert_eq!(verdict.routing_records, 2);
    }

    #[test]
    fn a_dropped_id_is_reported_lost_with_its_routing() {
        let (start, log, end) = scenario();
        let verdict = check(&start, 15, &log, &end, &[reader(3, &[])]);
        assert_eq!(verdict.lost, 1);
        assert!(!verdict.valid());
        assert!(
            verdict.findings[0].contains("#13 post.created by author 1")
                && verdict.findings[0].contains("#12 follow")
                && verdict.findings[0].contains("#14 unfollow (after)"),
            "{:?}",
            verdict.findings
        );
    }

    #[test]
    fn repeats_reordering_and_strangers_are_each_counted() {
        let (start, log, end) = scenario();
        let verdict = check(
            &start,
            15,
            &log,
            &end,
            &[reader(2, &[11, 13, 13, 15]), reader(1, &[11, 15, 13])],
        );
        assert_eq!(verdict.duplicated, 1);
        assert_eq!(verdict.out_of_order, 1);
        let verdict = check(&start, 15, &log, &end, &[reader(3, &[11, 13])]);
        assert_eq!(verdict.unexpected, 1, "#11 came before user 3 followed");
        assert!(verdict.findings[0].contains("not following"));
    }

    #[test]
    fn a_log_without_routing_records_disagrees_with_a_changed_follow_table() {
        let (start, mut log, end) = scenario();
        log.retain(|e| e.kind != ROUTE_FOLLOW);
        for (n, event) in log.iter_mut().enumerate() {
            event.id = 11 + n as i64;
        }
        let changed: BTreeSet<Pair> = end.iter().copied().chain([(4, 1)]).collect();
        let verdict = check(&start, 13, &log, &changed, &[]);
        assert!(
            verdict.log_errors[0].contains("no route.follow record at all"),
            "{:?}",
            verdict.log_errors
        );
    }

    #[test]
    fn a_gap_in_the_log_is_an_error() {
        let (start, mut log, end) = scenario();
        log.remove(2);
        let verdict = check(&start, 15, &log, &end, &[]);
        assert!(verdict.log_errors[0].contains("not dense"));
    }
}
