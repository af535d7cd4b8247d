//! Property tests of the broker's sequencing, routing and catch-up together, without actors:
//! for any log of events and routing records, any order, duplication or loss of its records on
//! the way in, repairs from the log, users coming online at any moment and follow-list reads
//! answered at any later head, what each user is handed is strictly increasing, never twice, and
//! exactly what the log addresses to them after they came online (follows and filters — mutes,
//! standing for blocks too, which are the same record of another kind — as they stood at each id) — computed here by a plain
//! fold over the log, independently of the code under test.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use proptest::prelude::*;

use super::catchup::Catchup;
use super::routing::Routing;
use super::sequencer::{Sequencer, SequencerLimits};
use crate::audience::{Audience, RouteChange};
use crate::committed::{LogEntry, Logged};
use crate::event_log::CommittedEvent;
use crate::follow_graph::FollowSnapshot;
use crate::ids::{EventId, UserId};
use crate::log_record::{FilterChange, FilterKind, FollowChange};
use crate::protocol::EventKind;

const USERS: i64 = 4;

/// (follower, followee) edges, or (muter, muted) mutes.
type Pairs = BTreeSet<(i64, i64)>;

/// What one id of the generated log holds.
#[derive(Debug, Clone)]
enum Gen {
    Post(i64),
    /// A notification for the first user caused by the second.
    Notify(i64, i64),
    Toggle(i64, i64),
    /// The first user mutes or unmutes the second.
    Hide(i64, i64),
    Skip,
}

/// The log, and the follow edges standing before its first id.
#[derive(Debug, Clone)]
struct Log {
    initial: BTreeSet<(i64, i64)>,
    entries: Vec<Logged>,
}

impl Log {
    fn build(initial: BTreeSet<(i64, i64)>, gens: Vec<Gen>) -> Self {
        let mut edges = initial.clone();
        let mut hidden: BTreeSet<(i64, i64)> = BTreeSet::new();
        let mut entries = Vec::new();
        for (n, g) in gens.into_iter().enumerate() {
            let id = EventId(n as i64 + 1);
            let entry = match g {
                Gen::Post(author) => event(id, Audience::FollowersOf(UserId(author))),
                Gen::Notify(user, actor) => notification(id, user, actor),
                Gen::Hide(u, o) if u != o => {
                    let on = hidden.insert((u, o)) || !hidden.remove(&(u, o));
                    LogEntry::Filter(FilterChange {
                        user: UserId(u),
                        other: UserId(o),
                        kind: FilterKind::Mute,
                        on,
                    })
                }
                Gen::Toggle(f, a) if f != a => {
                    let following = !edges.contains(&(f, a));
                    if following {
                        edges.insert((f, a));
                    } else {
                        edges.remove(&(f, a));
                    }
                    LogEntry::Follow(FollowChange {
                        follower: UserId(f),
                        followee: UserId(a),
                        following,
                    })
                }
                Gen::Toggle(..) | Gen::Hide(..) | Gen::Skip => LogEntry::Skip,
            };
            entries.push(Logged { id, entry });
        }
        Self { initial, entries }
    }

    fn head(&self) -> EventId {
        EventId(self.entries.len() as i64)
    }

    fn get(&self, id: EventId) -> Option<&Logged> {
        usize::try_from(id.0 - 1)
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The follow edges and the mutes just after `position` (a plain fold).
    fn edges_at(&self, position: EventId) -> (Pairs, Pairs) {
        let mut edges = self.initial.clone();
        let mut hidden = BTreeSet::new();
        for l in self.entries.iter().take_while(|l| l.id <= position) {
            fold(&l.entry, &mut edges, &mut hidden);
        }
        (edges, hidden)
    }

    /// What the log addresses to `user` after `position`, with the follow edges at each id.
    fn expected(&self, user: i64, position: EventId) -> Vec<i64> {
        let (mut edges, mut hidden) = self.edges_at(position);
        let mut out = Vec::new();
        for l in self.entries.iter().filter(|l| l.id > position) {
            fold(&l.entry, &mut edges, &mut hidden);
            if let LogEntry::Event(e) = &l.entry {
                let (addressed, actor) = match e.audience {
                    Audience::User(u) => (u.0 == user, e.payload["actor"]["id"].as_i64()),
                    Audience::FollowersOf(a) => {
                        (a.0 == user || edges.contains(&(user, a.0)), Some(a.0))
                    }
                };
                let muted = actor.is_some_and(|a| a != user && hidden.contains(&(user, a)));
                if addressed && !muted {
                    out.push(l.id.0);
                }
            }
        }
        out
    }

    /// A follow-list read for `users` after `after`, answered at `head`.
    fn snapshot(&self, users: &[UserId], after: EventId, head: EventId) -> FollowSnapshot {
        let (edges, hidden) = self.edges_at(head);
        FollowSnapshot {
            head,
            followees: users
                .iter()
                .map(|u| {
                    let followees = edges
                        .iter()
                        .filter(|(f, _)| *f == u.0)
                        .map(|(_, a)| UserId(*a))
                        .collect();
                    (*u, followees)
                })
                .collect(),
            hidden: users
                .iter()
                .map(|u| {
                    let muted = hidden
                        .iter()
                        .filter(|(m, _)| *m == u.0)
                        .map(|(_, o)| (UserId(*o), FilterKind::Mute))
                        .collect();
                    (*u, muted)
                })
                .collect(),
            records: self
                .entries
                .iter()
                .filter(|l| l.id > after && l.id <= head)
                .filter_map(|l| {
                    users
                        .iter()
                        .find_map(|u| RouteChange::of_user(&l.entry, *u))
                        .map(|c| (l.id, c))
                })
                .collect(),
        }
    }
}

/// Applies a routing record to the plain sets: follow edges and mutes, as (user, other).
fn fold(entry: &LogEntry, edges: &mut BTreeSet<(i64, i64)>, hidden: &mut BTreeSet<(i64, i64)>) {
    match entry {
        LogEntry::Follow(f) if f.following => {
            edges.insert((f.follower.0, f.followee.0));
        }
        LogEntry::Follow(f) => {
            edges.remove(&(f.follower.0, f.followee.0));
        }
        LogEntry::Filter(f) if f.on => {
            hidden.insert((f.user.0, f.other.0));
        }
        LogEntry::Filter(f) => {
            hidden.remove(&(f.user.0, f.other.0));
        }
        LogEntry::Event(_) | LogEntry::Account(_) | LogEntry::Skip => {}
    }
}

fn notification(id: EventId, user: i64, actor: i64) -> LogEntry {
    LogEntry::Event(Arc::new(CommittedEvent {
        id,
        kind: EventKind::Notification,
        audience: Audience::User(UserId(user)),
        payload: serde_json::json!({"actor": {"id": actor}}),
    }))
}

fn event(id: EventId, audience: Audience) -> LogEntry {
    LogEntry::Event(Arc::new(CommittedEvent {
        id,
        kind: EventKind::PostCreated,
        audience,
        payload: serde_json::Value::Null,
    }))
}

/// One step of the world around the broker.
#[derive(Debug, Clone)]
enum Step {
    /// A record arrives (from this node, or another through Redis); the index picks one of the
    /// log's ids, so some arrive twice and some never.
    Arrive(usize),
    /// The broker reads the gap it knows of from the log.
    Repair,
    /// The broker compares with the log's head (reads everything after its position).
    HeadPoll,
    /// A user comes online.
    Connect(i64),
    /// The follow-list read under way is answered at a head `n`% of the way from the broker's
    /// position to the log's head.
    Answer(u8),
}

/// The broker's parts, driven as the actor drives them.
struct Model {
    sequencer: Sequencer,
    routing: Routing,
    catchup: Catchup,
    online: HashMap<i64, EventId>,
    delivered: HashMap<i64, Vec<i64>>,
    in_flight: Option<(Vec<UserId>, EventId)>,
}

impl Model {
    fn new(max_waiting: usize) -> Self {
        let mut sequencer = Sequencer::new(SequencerLimits {
            max_records: max_waiting,
            max_bytes: usize::MAX,
        });
        sequencer.start_at(EventId(0));
        Self {
            sequencer,
            routing: Routing::default(),
            catchup: Catchup::new(usize::MAX, 2),
            online: HashMap::new(),
            delivered: HashMap::new(),
            in_flight: None,
        }
    }

    fn offer(&mut self, entries: Vec<Logged>) {
        for (logged, _) in self.sequencer.offer_all(entries, None) {
            match &logged.entry {
                LogEntry::Follow(f) => self.routing.apply(f),
                LogEntry::Filter(f) => self.routing.apply_filter(f),
                LogEntry::Event(e) => {
                    for user in self.routing.recipients(e).collect::<Vec<_>>() {
                        self.delivered.entry(user.0).or_default().push(logged.id.0);
                    }
                }
                LogEntry::Account(_) | LogEntry::Skip => {}
            }
            assert!(self.catchup.released(&logged).is_empty());
        }
    }

    fn step(&mut self, log: &Log, step: Step) {
        let position = self.sequencer.position().unwrap_or_default();
        match step {
            Step::Arrive(i) => {
                if let Some(l) = log.entries.get(i % log.entries.len().max(1)) {
                    self.offer(vec![l.clone()]);
                }
            }
            Step::Repair => {
                if let Some((from, to)) = self.sequencer.gap() {
                    let read = (from.0..to.0).filter_map(|i| log.get(EventId(i)).cloned());
                    self.offer(read.collect());
                }
            }
            Step::HeadPoll => {
                let read = (position.0 + 1..=log.head().0).filter_map(|i| log.get(EventId(i)));
                self.offer(read.cloned().collect());
            }
            Step::Connect(user) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = self.online.entry(user) {
                    slot.insert(position);
                    self.catchup.start(UserId(user), position);
                    if self.in_flight.is_none() {
                        self.in_flight = self.catchup.next_read();
                    }
                }
            }
            Step::Answer(percent) => {
                let Some((users, after)) = self.in_flight.take() else {
                    return;
                };
                let span = log.head().0 - position.0;
                let head = EventId(position.0 + span * i64::from(percent.min(100)) / 100);
                let snapshot = log.snapshot(&users, after, head);
                for caught_up in self.catchup.loaded(&snapshot, position) {
                    self.routing.load(caught_up.user, caught_up.followees);
                    let ids = caught_up.deliver.iter().map(|l| l.id.0);
                    self.delivered
                        .entry(caught_up.user.0)
                        .or_default()
                        .extend(ids);
                }
                self.in_flight = self.catchup.next_read();
            }
        }
    }

    /// Heals: everything arrives (by repair), every read is answered.
    fn settle(&mut self, log: &Log) {
        for _ in 0..100 {
            self.step(log, Step::HeadPoll);
            self.step(log, Step::Answer(100));
            if self.in_flight.is_none() && self.sequencer.position() == Some(log.head()) {
                return;
            }
        }
        panic!("the model did not settle");
    }
}

fn gen_strategy() -> impl Strategy<Value = Gen> {
    prop_oneof![
        4 => (1..=USERS).prop_map(Gen::Post),
        1 => (1..=USERS, 1..=USERS).prop_map(|(u, a)| Gen::Notify(u, a)),
        3 => (1..=USERS, 1..=USERS).prop_map(|(f, a)| Gen::Toggle(f, a)),
        2 => (1..=USERS, 1..=USERS).prop_map(|(u, o)| Gen::Hide(u, o)),
        1 => Just(Gen::Skip),
    ]
}

fn step_strategy(len: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..len.max(1)).prop_map(Step::Arrive),
        1 => Just(Step::Repair),
        1 => Just(Step::HeadPoll),
        2 => (1..=USERS).prop_map(Step::Connect),
        2 => (0u8..=100).prop_map(Step::Answer),
    ]
}

fn initial_strategy() -> impl Strategy<Value = BTreeSet<(i64, i64)>> {
    proptest::collection::btree_set((1..=USERS, 1..=USERS), 0..8)
        .prop_map(|s| s.into_iter().filter(|(f, a)| f != a).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn each_user_gets_exactly_what_the_log_addresses_to_them_in_order(
        (initial, gens, steps, max_waiting) in (initial_strategy(), proptest::collection::vec(gen_strategy(), 1..40))
            .prop_flat_map(|(initial, gens)| {
                let len = gens.len();
                (
                    Just(initial),
                    Just(gens),
                    proptest::collection::vec(step_strategy(len), 0..120),
                    1usize..8,
                )
            })
    ) {
        let log = Log::build(initial, gens);
        let mut model = Model::new(max_waiting);
        for step in steps {
            model.step(&log, step);
        }
        model.settle(&log);
        for (user, position) in &model.online {
            let got = model.delivered.get(user).cloned().unwrap_or_default();
            prop_assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "user {user}: not strictly increasing: {got:?}"
            );
            prop_assert_eq!(
                &got,
                &log.expected(*user, *position),
                "user {} online from {}", user, position.0
            );
        }
    }
}
