//! A websocket over TLS: the same session and limits as over plain TCP, read and written
//! through rustls (whose record buffers live as long as the connection).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use actix_web_actors::ws::WebsocketContext;
use aisocial_actors::protocol::MAX_FRAME_BYTES;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::{LINGER, OpenSocket, READ_CHUNK, STALLED, Transport};

type Tls = TlsStream<TcpStream>;

impl Transport for Tls {
    fn run(
        self,
        session: aisocial_actors::session::Session,
        leftover: Bytes,
        stall: Duration,
        open: OpenSocket,
    ) {
        // Frames are written whole and at once; Nagle would only delay them.
        let _ = self.get_ref().0.set_nodelay(true);
        let (read, write) = tokio::io::split(self);
        let back = Returned::default();
        let reader = Reader {
            read: Some(read),
            back: Rc::clone(&back),
        };
        let codec = actix_http::ws::Codec::new().max_size(MAX_FRAME_BYTES);
        let frames = WebsocketContext::with_codec(session, incoming(reader, leftover), codec);
        actix_rt::spawn(write_all(Box::pin(frames), write, back, stall, open));
    }
}

/// The read half, handed back when the session's stream is dropped so that the closing side
/// can read the client's close (a socket closed with unread bytes would reset instead).
type Returned = Rc<Cell<Option<ReadHalf<Tls>>>>;

/// The read half while the session's stream holds it.
struct Reader {
    read: Option<ReadHalf<Tls>>,
    back: Returned,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.back.set(self.read.take());
    }
}

/// What the client sends, decrypted, as it arrives.
fn incoming(
    reader: Reader,
    leftover: Bytes,
) -> impl Stream<Item = Result<Bytes, actix_http::error::PayloadError>> {
    let first = (!leftover.is_empty()).then_some(leftover);
    futures_util::stream::unfold((reader, first), |(mut reader, first)| async move {
        if let Some(bytes) = first {
            return Some((Ok(bytes), (reader, None)));
        }
        let read = reader.read.as_mut()?;
        // As over TCP: the decoder (and its frame-size and flood limits) runs between reads.
        tokio::task::consume_budget().await;
        let mut chunk = [0u8; READ_CHUNK];
        match read.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => Some((Ok(Bytes::copy_from_slice(&chunk[..n])), (reader, None))),
            Err(e) => Some((Err(actix_http::error::PayloadError::Io(e)), (reader, None))),
        }
    })
}

/// Writes each frame the session yields; when the session ends, sends `close_notify`, shuts
/// the socket for writing and reads until the client closes too, or the linger time.
async fn write_all(
    mut frames: std::pin::Pin<Box<impl Stream<Item = Result<Bytes, actix_web::Error>>>>,
    mut write: WriteHalf<Tls>,
    back: Returned,
    stall: Duration,
    _open: OpenSocket,
) {
    while let Some(Ok(frame)) = frames.next().await {
        if Box::pin(write_within(&mut write, &frame, stall))
            .await
            .is_err()
        {
            STALLED.inc();
            return;
        }
    }
    // The session (and the read half it held) is gone; the close frame is on its way.
    drop(frames);
    let Some(read) = back.take() else {
        return;
    };
    Box::pin(close(read.unsplit(write), Instant::now() + LINGER)).await;
}

/// Sends `close_notify` and the FIN, then reads and discards until the client closes, or the
/// deadline.
async fn close(mut tls: Tls, deadline: Instant) {
    let left = || deadline.saturating_duration_since(Instant::now());
    if !matches!(
        tokio::time::timeout(left(), tls.shutdown()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let mut sink = [0u8; 512];
    while let Ok(Ok(n)) = tokio::time::timeout(left(), tls.read(&mut sink)).await {
        if n == 0 {
            return;
        }
        tokio::task::consume_budget().await;
    }
}

/// Writes `bytes` and flushes them to the socket, failing when the socket takes nothing for
/// `stall` (a slow client that keeps taking bytes is never cut off).
async fn write_within(
    write: &mut WriteHalf<Tls>,
    mut bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    let timed_out = || std::io::Error::from(std::io::ErrorKind::TimedOut);
    while !bytes.is_empty() {
        match tokio::time::timeout(stall, write.write(bytes)).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) => return Err(e),
        }
    }
    // rustls holds the records until flushed; a flush that makes no progress for `stall` is a
    // client that stopped reading.
    tokio::time::timeout(stall, write.flush())
        .await
        .map_err(|_| timed_out())?
}
