//! The client crate's frame types against the real server: what `aisocial-client` reads
//! (`Hello`, `Frame`) is checked here on the server's own output, not only on golden JSON
//! written by hand in the client crate.

use std::time::Duration;

use aisocial_client::frame::{HelloUser, Resume};
use aisocial_client::{Frame, NewPost, ResumeStatus, Socket};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::spawn_app;

/// The next text frame that is not `presence` (a followee coming online may send one at any
/// time), within 10 s.
async fn next_text(ws: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no frame within 10 s")
            .expect("the socket ended")
            .expect("the socket failed");
        if let Message::Text(text) = message {
            let kind = Frame::parse(&text).unwrap().kind.to_owned();
            if kind != "presence" {
                return text.to_string();
            }
        }
    }
}

#[actix_web::test]
async fn the_clients_hello_and_frames_read_the_servers_own() {
    let app = spawn_app().await;
    let client = app.client();
    let alice = client.sign_in_dev("alice").await.unwrap();
    let bob = client.sign_in_dev("bob").await.unwrap();
    assert_eq!(alice.handle, "alice");
    assert!(alice.user_id > 0 && bob.user_id != alice.user_id);
    assert!(alice.expires_in > 0 && !alice.refresh.is_empty());
    client.follow(&bob.token, "alice").await.unwrap();

    // hello, fresh.
    let (mut bob_ws, hello) = client.open_feed(&bob.token, None).await.unwrap();
    assert_eq!(
        hello.user,
        HelloUser {
            id: bob.user_id,
            handle: "bob".into()
        }
    );
    assert_eq!(
        hello.resume,
        Resume {
            since: None,
            replayed: 0,
            status: ResumeStatus::Fresh
        }
    );
    assert!(hello.heartbeat_ms > 0 && !hello.session_id.is_empty());

    // post.created, live.
    let post = client
        .create_post(&alice.token, &NewPost::new("  through the client  "))
        .await
        .unwrap();
    let text = next_text(&mut bob_ws).await;
    let frame = Frame::parse(&text).unwrap();
    assert_eq!(frame.kind, "post.created", "{text}");
    assert_eq!(frame.post_id(), Some(post.id), "{text}");
    assert_eq!(frame.body(), "through the client", "{text}");
    assert!(frame.is_durable(), "{text}");
    let seen = frame.id.unwrap();
    drop(bob_ws);

    // hello, resumed: the missed post is replayed with its frame.
    let missed = client
        .create_post(&alice.token, &NewPost::new("missed \"quoted\""))
        .await
        .unwrap();
    let (mut bob_ws, hello) = client.open_feed(&bob.token, Some(seen)).await.unwrap();
    assert_eq!(
        hello.resume,
        Resume {
            since: Some(seen),
            replayed: 1,
            status: ResumeStatus::Resumed
        }
    );
    let text = next_text(&mut bob_ws).await;
    let frame = Frame::parse(&text).unwrap();
    assert_eq!(
        (frame.kind, frame.post_id(), frame.body()),
        ("post.created", Some(missed.id), "missed \"quoted\""),
        "{text}"
    );
    assert!(frame.id.is_some_and(|id| id > seen), "{text}");
    // A since from the future asks for a resync.
    let (_, hello) = client
        .open_feed(&bob.token, Some(seen + 1_000_000))
        .await
        .unwrap();
    assert_eq!(hello.resume_status(), ResumeStatus::ResyncRequired);

    // notification: bob likes, then replies to, alice's post.
    let (mut alice_ws, _) = client.open_feed(&alice.token, None).await.unwrap();
    let liked = client
        .like_request(&bob.token, post.id)
        .send()
        .await
        .unwrap();
    assert_eq!(liked.status(), 204);
    let text = next_text(&mut alice_ws).await;
    let frame = Frame::parse(&text).unwrap();
    assert!(frame.is_durable(), "{text}");
    assert_eq!(
        frame.notification(),
        Some(("like", Some(post.id))),
        "{text}"
    );
    let reply = NewPost {
        reply_to: Some(post.id),
        ..NewPost::new("a reply")
    };
    client.create_post(&bob.token, &reply).await.unwrap();
    let text = next_text(&mut alice_ws).await;
    let frame = Frame::parse(&text).unwrap();
    assert_eq!(
        frame.notification().map(|(kind, _)| kind),
        Some("reply"),
        "{text}"
    );
}
