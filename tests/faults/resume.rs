//! A long resume follows the client's pace: in a process of its own, because the slow-consumer
//! counters it moves are process-wide and other tests watch them.

use std::time::Duration;

use crate::helpers::spawn_app_with;

/// A resume is sent a page at a time as the client takes it, and live frames that arrive
/// meanwhile count against the outbound limit: a client that reads nothing during a long resume
/// holds no more than the socket's buffers and a page, and is closed with 1013 once live frames
/// pass the limit; it then resumes with nothing lost.
#[actix_web::test]
async fn a_long_resume_follows_the_clients_pace_and_a_stalled_client_is_closed_with_1013() {
    use crate::helpers::WsEvent;

    let app = spawn_app_with(&["--ws-outbound-limit=16", "--ws-heartbeat-ms=200"]).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    app.follow(&bob, "alice").await;
    let db = app.db().await;
    let since: i64 = db
        .query_one("SELECT last_id FROM event_counter", &[])
        .await
        .map(|r| r.get(0))
        .unwrap();
    // 6,000 of alice's posts of 1,000 characters (more than the kernel's socket buffers
    // hold), with ids from the counter as the DbWriter would take them.
    const MISSED: i64 = 6_000;
    db.batch_execute(&format!(
        "BEGIN; \
         WITH c AS (UPDATE event_counter SET last_id = last_id + {MISSED} RETURNING last_id) \
         INSERT INTO events (id, kind, author_id, payload) \
         SELECT c.last_id - {MISSED} + g, 'post.created', {}, \
           jsonb_build_object('id', g, 'body', repeat('x', 1000)) \
         FROM c, generate_series(1, {MISSED}) g; \
         COMMIT;",
        alice.id
    ))
    .await
    .unwrap();
    // The broker finds rows written behind its back at its next look at the log's head; a post
    // after them reaching a watcher shows it is past them (it releases in id order), so that
    // the resumes below race nothing.
    let marker = app.sign_in("marker").await;
    let wendy = app.sign_in("wendy").await;
    app.follow(&wendy, "marker").await;
    let (mut watching, _) = app.ws(&wendy, None).await;
    app.create_post(&marker, "after the rows").await;
    assert_eq!(
        watching.next_json_skipping_presence().await["type"],
        "post.created"
    );
    let (mut slow, hello) = app.stalled_ws_since(&bob, Some(since)).await;
    assert_eq!(hello["data"]["resume"]["replayed"], MISSED);
    // The client reads nothing while alice goes on posting.
    for n in 0..40 {
        assert_eq!(app.post(&alice, &format!("live {n}")).await.status(), 201);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut last = since;
    let mut before_close = 0;
    let code = loop {
        match slow.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(frame) => {
                if let Some(id) = frame["id"].as_i64() {
                    assert!(id > last, "{id} after {last}");
                    last = id;
                    before_close += 1;
                }
            }
            WsEvent::Closed(frame) => break frame.map(|f| u16::from(f.code)),
            WsEvent::Timeout => panic!("the stalled client was never closed"),
        }
    };
    assert_eq!(code, Some(1013));
    assert!(
        before_close < MISSED,
        "all {before_close} replayed frames were buffered for a client that read nothing"
    );
    // Resuming where it stopped brings exactly the rest.
    let (mut again, hello) = app.ws(&bob, Some(last)).await;
    let rest = hello["data"]["resume"]["replayed"]
        .as_i64()
        .unwrap_or_default();
    assert_eq!(before_close + rest, MISSED + 40);
    for _ in 0..rest {
        let id = again.next_json().await["id"].as_i64().unwrap_or_default();
        assert!(id > last);
        last = id;
    }
}
