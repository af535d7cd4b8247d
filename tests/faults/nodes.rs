//! Nodes that die or are replaced under load, with the real binary: one killed with SIGKILL,
//! and a rolling restart of two with SIGTERM. Clients fail over to the other node and resume
//! with `since`; nothing acknowledged or committed is lost, nothing is delivered twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use aisocial_client::Socket;

use crate::helpers::{PG_BASE, ServerProcess, unique_name, ws_upgrade};

/// A node of a deployment whose database and Redis prefix are `deployment`'s.
async fn node(deployment: &str) -> ServerProcess {
    let database = format!("{PG_BASE}/{deployment}");
    let prefix = format!("aisocial-test:{deployment}:");
    let node_id = format!("node-{}", &unique_name()[..6]);
    ServerProcess::start(&[
        ("DATABASE_URL", database.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("NODE_ID", node_id.as_str()),
        ("JWT_SIGNING_KEY", crate::helpers::SIGNING_KEY),
        ("RATE_LIMIT_USER_PER_MIN", "1000000"),
        ("RATE_LIMIT_IP_PER_MIN", "10000000"),
        ("SHUTDOWN_TIMEOUT_SECS", "10"),
    ])
    .await
}

async fn open(address: &str, token: &str, since: Option<i64>) -> Socket {
    ws_upgrade(address, token, since)
        .await
        .unwrap_or_else(|e| panic!("websocket to {address}: {e}"))
        .stream
}

/// What a follower saw: post ids in arrival order, and the close codes it was sent.
#[derive(Default)]
struct Seen {
    posts: Vec<i64>,
    event_ids: Vec<i64>,
    closes: Vec<Option<u16>>,
}

/// Reads a socket until it ends; returns the last durable event id seen.
async fn read_until_closed(socket: &mut Socket, seen: &Mutex<Seen>) -> Option<i64> {
    let mut last = None;
    let mut close = None;
    while let Some(frame) = socket.next().await {
        match frame {
            Ok(Message::Text(text)) => {
                let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(id) = frame["id"].as_i64() {
                    last = Some(id);
                    let mut seen = seen.lock().await;
                    seen.event_ids.push(id);
                    if frame["type"] == "post.created" {
                        seen.posts
                            .push(frame["data"]["id"].as_i64().unwrap_or_default());
                    }
                }
            }
            Ok(Message::Ping(payload)) => {
                let _ = socket.send(Message::Pong(payload)).await;
            }
            Ok(Message::Close(frame)) => {
                close = frame.map(|c| u16::from(c.code));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // A close frame's code, or None when the connection just ended.
    seen.lock().await.closes.push(close);
    last
}

/// A follower that stays connected to whichever node is alive, resuming with `since`.
fn follower(
    nodes: Arc<Mutex<Vec<String>>>,
    token: String,
    seen: Arc<Mutex<Seen>>,
    until: Arc<tokio::sync::Notify>,
) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut since = None;
        loop {
            let address = nodes.lock().await.last().cloned().unwrap_or_default();
            let Ok(mut socket) = ws_upgrade(&address, &token, since)
                .await
                .map(|ws| ws.stream)
            else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            tokio::select! {
                last = read_until_closed(&mut socket, &seen) => {
                    if last.is_some() {
                        since = last;
                    }
                }
                () = until.notified() => return,
            }
        }
    })
}

fn assert_exactly_once_in_order(seen: &Seen, acknowledged: &[i64]) {
    let mut sorted = seen.event_ids.clone();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        seen.event_ids.len(),
        "an event was delivered twice"
    );
    assert!(
        seen.event_ids.windows(2).all(|w| w[0] < w[1]),
        "event ids went backwards"
    );
    let mut posts = seen.posts.clone();
    posts.sort_unstable();
    let mut expected = acknowledged.to_vec();
    expected.sort_unstable();
    assert_eq!(posts, expected, "the follower missed or repeated posts");
}

/// Posts through whichever node answers, retrying with the same key; returns the post id.
async fn post(http: &reqwest::Client, nodes: &Mutex<Vec<String>>, token: &str, key: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0usize;
    loop {
        assert!(Instant::now() < deadline, "{key} was never acknowledged");
        let address = {
            let nodes = nodes.lock().await;
            nodes[attempt % nodes.len()].clone()
        };
        attempt += 1;
        let res = http
            .post(format!("http://{address}/api/v1/posts"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&serde_json::json!({ "body": key }))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match res {
            Ok(res) if res.status() == 201 => {
                let body: Value = res.json().await.unwrap_or_default();
                return body["id"].as_i64().unwrap_or_default();
            }
            Ok(res) => {
                let status = res.status();
                assert_eq!(status, 503, "only a draining node may refuse: {status}");
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_node_killed_with_sigkill_its_followers_resume_on_another_with_nothing_missed() {
    let deployment = format!("aisocial_test_{}", unique_name());
    let mut doomed = node(&deployment).await;
    let survivor = node(&deployment).await;
    let author = survivor.sign_in("author").await;
    let follower_token = doomed.sign_in("follower").await;
    let http = reqwest::Client::new();
    let followed = http
        .put(format!(
            "http://{}/api/v1/users/author/follow",
            survivor.address
        ))
        .bearer_auth(&follower_token)
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), 204);

    // The follower is on the doomed node; the author writes through the survivor.
    let nodes = Arc::new(Mutex::new(vec![
        survivor.address.clone(),
        doomed.address.clone(),
    ]));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(tokio::sync::Notify::new());
    // Wait until the follower's first socket is up on the doomed node.
    let mut probe = open(&doomed.address, &follower_token, None).await;
    let _ = probe.next().await;
    drop(probe);
    let reader = follower(
        Arc::clone(&nodes),
        follower_token.clone(),
        Arc::clone(&seen),
        Arc::clone(&stop),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let writers = Mutex::new(vec![survivor.address.clone()]);
    let mut acknowledged = Vec::new();
    for i in 0..60 {
        if i == 20 {
            doomed.child.kill().unwrap();
            let _ = doomed.child.wait();
            nodes.lock().await.retain(|a| *a != doomed.address);
        }
        acknowledged.push(post(&http, &writers, &author, &format!("sigkill-{i}")).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().await.posts.len() < acknowledged.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.notify_waiters();
    let _ = reader.await;
    let seen = seen.lock().await;
    assert!(
        seen.closes.contains(&None),
        "the follower's first socket died with its node: {:?}",
        seen.closes
    );
    assert_exactly_once_in_order(&seen, &acknowledged);
    println!(
        "node SIGKILL: {} posts, all delivered once and in order after failing over",
        acknowledged.len()
    );
    drop(seen);
    drop(doomed);
    drop(survivor);
    crate::helpers::drop_database(&deployment).await;
}

#[actix_web::test]
async fn a_rolling_restart_under_load_loses_nothing_and_closes_every_socket_with_1001() {
    let deployment = format!("aisocial_test_{}", unique_name());
    let mut first = node(&deployment).await;
    let mut second = node(&deployment).await;
    let author = first.sign_in("author").await;
    let http = reqwest::Client::new();
    let nodes = Arc::new(Mutex::new(vec![
        first.address.clone(),
        second.address.clone(),
    ]));
    let mut followers = Vec::new();
    for n in 0..4 {
        let token = first.sign_in(&format!("follower_{n}")).await;
        let res = http
            .put(format!(
                "http://{}/api/v1/users/author/follow",
                first.address
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let seen = Arc::new(Mutex::new(Seen::default()));
        followers.push((token, seen));
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    let readers: Vec<_> = followers
        .iter()
        .map(|(token, seen)| {
            follower(
                Arc::clone(&nodes),
                token.clone(),
                Arc::clone(seen),
                Arc::clone(&stop),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Writes go on throughout, through whichever node answers.
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let nodes = Arc::clone(&nodes);
        let writing = Arc::clone(&writing);
        let acknowledged = Arc::clone(&acknowledged);
        let http = http.clone();
        actix_rt::spawn(async move {
            let mut i = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let id = post(&http, &nodes, &author, &format!("rolling-{i}")).await;
                acknowledged.lock().await.push(id);
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let mut drains = Vec::new();
    for round in 0..2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let leaving = if round == 0 { &mut first } else { &mut second };
        let address = leaving.address.clone();
        // New connections go to the other node from now on (a load balancer's health check).
        nodes.lock().await.retain(|a| *a != address);
        let pid = nix::unistd::Pid::from_raw(i32::try_from(leaving.child.id()).unwrap_or_default());
        let signalled = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = loop {
            if let Ok(Some(status)) = leaving.child.try_wait() {
                break status;
            }
            assert!(
                signalled.elapsed() < Duration::from_secs(20),
                "no exit 20 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "{status}");
        drains.push(signalled.elapsed());
        // Its replacement joins.
        let replacement = node(&deployment).await;
        nodes.lock().await.push(replacement.address.clone());
        *leaving = replacement;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let acknowledged = acknowledged.lock().await.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    for (_, seen) in &followers {
        while seen.lock().await.posts.len() < acknowledged.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.notify_waiters();
    for reader in readers {
        let _ = reader.await;
    }
    // Stored: every acknowledged post, once.
    let (db, connection) =
        tokio_postgres::connect(&format!("{PG_BASE}/{deployment}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    actix_rt::spawn(async move {
        let _ = connection.await;
    });
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM posts WHERE body LIKE 'rolling-%'",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap();
    assert_eq!(
        usize::try_from(stored).unwrap_or_default(),
        acknowledged.len(),
        "stored posts = acknowledged posts"
    );
    for (_, seen) in &followers {
        let seen = seen.lock().await;
        assert!(
            !seen.closes.is_empty() && seen.closes.iter().all(|c| *c == Some(1001)),
            "every socket on a leaving node was closed with 1001: {:?}",
            seen.closes
        );
        assert_exactly_once_in_order(&seen, &acknowledged);
    }
    println!(
        "rolling restart: {} posts acknowledged and stored, {} followers each saw all once in \
         order, drains {:?}",
        acknowledged.len(),
        followers.len(),
        drains
    );
    drop(db);
    drop(first);
    drop(second);
    crate::helpers::drop_database(&deployment).await;
}

/// Reads frames until a `presence` frame for `handle` with `status` arrives; panics after `wait`.
async fn presence_of(socket: &mut Socket, handle: &str, status: &str, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no presence {status} for {handle} within {wait:?}"));
        match frame {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                if frame["type"] == "presence"
                    && frame["data"]["user"]["handle"] == handle
                    && frame["data"]["status"] == status
                {
                    return;
                }
            }
            Some(Ok(Message::Ping(payload))) => {
                let _ = socket.send(Message::Pong(payload)).await;
            }
            Some(Ok(_)) => {}
            other => panic!("the watcher's socket ended: {other:?}"),
        }
    }
}

#[actix_web::test]
async fn a_node_killed_with_sigkill_stops_counting_its_users_online() {
    let deployment = format!("aisocial_test_{}", unique_name());
    let mut doomed = node(&deployment).await;
    let survivor = node(&deployment).await;
    let watcher = survivor.sign_in("watcher").await;
    let walker = doomed.sign_in("walker").await;
    let http = reqwest::Client::new();
    let followed = http
        .put(format!(
            "http://{}/api/v1/users/walker/follow",
            survivor.address
        ))
        .bearer_auth(&watcher)
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), 204);
    let mut watching = open(&survivor.address, &watcher, None).await;
    // A post of the walker's reaching the watcher shows the watcher's follow list is in.
    let posted = http
        .post(format!("http://{}/api/v1/posts", survivor.address))
        .bearer_auth(&walker)
        .json(&serde_json::json!({ "body": "hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    loop {
        let frame = watching.next().await;
        if let Some(Ok(Message::Text(text))) = frame
            && text.contains("post.created")
        {
            break;
        }
    }
    let _walking = open(&doomed.address, &walker, None).await;
    presence_of(&mut watching, "walker", "online", Duration::from_secs(5)).await;
    // The walker's node dies without a word: within the heartbeat expiry, the watcher hears.
    let killed_at = Instant::now();
    let _ = doomed.child.kill();
    let _ = doomed.child.wait();
    presence_of(&mut watching, "walker", "offline", Duration::from_secs(8)).await;
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "not before the expiry"
    );
}
