//! Opening the feed against a stand-in server on port 0 (tungstenite's own): the bearer token
//! and `since` reach the upgrade, `hello` is read, and a refusal or a close before `hello` comes
//! back typed; a ticket replaces the token. The real server is exercised by the load tests'
//! smoke test and the server's integration tests (`tests/api/client_frames.rs`).

use std::net::SocketAddr;

use aisocial_client::ws::{self, Connect};
use aisocial_client::{Error, ResumeStatus};
use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

const HELLO: &str = r#"{"type":"hello","data":{"session_id":"s1","user":{"id":7,"handle":"alice"},"heartbeat_ms":15000,"resume":{"since":41,"replayed":0,"status":"resumed"}}}"#;

/// What the stand-in does with its one connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Checks the token and `since`, then sends `hello`.
    Hello,
    /// Checks the ticket and `since` in the query (and that no token is sent), then sends
    /// `hello`.
    Ticket,
    /// Answers the upgrade with 503 and `Retry-After: 3`.
    Refuse,
    /// Accepts, then closes with 1008 before `hello`.
    CloseFirst,
}

async fn stand_in(behaviour: Behaviour) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        #[expect(
            clippy::result_large_err,
            reason = "the handshake callback's signature is tungstenite's"
        )]
        let check = move |request: &Request, response: Response| {
            let bearer = request.headers().get("authorization");
            let query = request.uri().query();
            let (authorized, resumed) = match behaviour {
                Behaviour::Ticket => (bearer.is_none(), query == Some("ticket=t1&since=41")),
                _ => (
                    bearer.is_some_and(|v| v == "Bearer tok"),
                    query == Some("since=41"),
                ),
            };
            if matches!(behaviour, Behaviour::Refuse) || !authorized || !resumed {
                let mut refusal = ErrorResponse::new(None);
                *refusal.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                refusal
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static("3"));
                return Err(refusal);
            }
            Ok(response)
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
            return;
        };
        let _ = match behaviour {
            Behaviour::Hello | Behaviour::Ticket => ws.send(Message::text(HELLO)).await,
            Behaviour::CloseFirst => {
                ws.close(Some(CloseFrame {
                    code: 1008.into(),
                    reason: "".into(),
                }))
                .await
            }
            Behaviour::Refuse => Ok(()),
        };
        // Keep the socket until the client is done with it.
        let _ = futures_util::StreamExt::next(&mut ws).await;
    });
    Ok(addr)
}

#[tokio::test]
async fn the_feed_opens_with_the_token_and_since_and_reads_hello()
-> Result<(), Box<dyn std::error::Error>> {
    let addr = stand_in(Behaviour::Hello).await?;
    let (_ws, hello) = ws::open(
        &format!("http://{addr}"),
        "tok",
        Some(41),
        &Connect::default(),
    )
    .await?;
    assert_eq!(hello.user.handle, "alice");
    assert_eq!(hello.resume_status(), ResumeStatus::Resumed);
    Ok(())
}

#[tokio::test]
async fn the_feed_opens_with_a_ticket_instead_of_the_token()
-> Result<(), Box<dyn std::error::Error>> {
    let addr = stand_in(Behaviour::Ticket).await?;
    let (_ws, hello) = ws::open_with_ticket(
        &format!("http://{addr}"),
        "t1",
        Some(41),
        &Connect::default(),
    )
    .await?;
    assert_eq!(hello.user.id, 7);
    Ok(())
}

#[tokio::test]
async fn an_upgrade_reads_nothing_and_hello_comes_with_its_text()
-> Result<(), Box<dyn std::error::Error>> {
    let addr = stand_in(Behaviour::Hello).await?;
    let options = Connect {
        recv_buffer: Some(4096),
        ..Connect::default()
    };
    let mut socket = ws::upgrade(&format!("http://{addr}"), "tok", Some(41), &options).await?;
    let (hello, text) = ws::read_hello_text(&mut socket).await?;
    assert_eq!(text, HELLO, "verbatim");
    assert_eq!(hello.resume.since, Some(41));
    Ok(())
}

#[tokio::test]
async fn a_refused_upgrade_says_its_status_and_retry_after()
-> Result<(), Box<dyn std::error::Error>> {
    let addr = stand_in(Behaviour::Refuse).await?;
    let opened = ws::open(
        &format!("http://{addr}"),
        "tok",
        Some(41),
        &Connect::default(),
    )
    .await;
    assert!(
        matches!(
            &opened,
            Err(Error::Refused { status: 503, retry_after: Some(after) }) if after == "3"
        ),
        "{:?}",
        opened.map(|(_, h)| h)
    );
    Ok(())
}

#[tokio::test]
async fn a_close_before_hello_gives_its_code() -> Result<(), Box<dyn std::error::Error>> {
    let addr = stand_in(Behaviour::CloseFirst).await?;
    let opened = ws::open(
        &format!("http://{addr}"),
        "tok",
        Some(41),
        &Connect::default(),
    )
    .await;
    assert!(
        matches!(opened, Err(Error::ClosedBeforeHello(1008))),
        "{:?}",
        opened.map(|(_, h)| h)
    );
    Ok(())
}
