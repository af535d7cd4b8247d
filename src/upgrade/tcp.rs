//! A websocket over plain TCP: reads only while bytes are arriving and writes each frame
//! straight to the socket, so an idle one holds no buffer at all.

use std::sync::Arc;
use std::time::Instant;

use actix_web::web::Bytes;
use actix_web_actors::ws::WebsocketContext;
use aisocial_actors::protocol::MAX_FRAME_BYTES;
use futures_util::{Stream, StreamExt};
use tokio::net::TcpStream;

use super::{LINGER, OpenSocket, READ_CHUNK, STALLED, Transport};

impl Transport for TcpStream {
    fn run(
        self,
        session: aisocial_actors::session::Session,
        leftover: Bytes,
        stall: std::time::Duration,
        open: OpenSocket,
    ) {
        run(session, self, leftover, stall, open);
    }
}

/// Drives `session` over the socket until either side ends it.
///
/// A client that accepts nothing for `stall` (its window stays shut while a frame waits) is as
/// gone as a silent one: the connection is dropped, which stops the session (and tells the
/// broker), instead of holding it until TCP gives up.
fn run(
    session: aisocial_actors::session::Session,
    io: TcpStream,
    leftover: Bytes,
    stall: std::time::Duration,
    open: OpenSocket,
) {
    // Frames are written whole and at once; Nagle would only delay them.
    let _ = io.set_nodelay(true);
    let io = Arc::new(io);
    let codec = actix_http::ws::Codec::new().max_size(MAX_FRAME_BYTES);
    let frames = WebsocketContext::with_codec(session, incoming(Arc::clone(&io), leftover), codec);
    actix_rt::spawn(write_all(Box::pin(frames), io, stall, open));
}

/// What the client sends, as it arrives; no buffer is held between reads.
fn incoming(
    io: Arc<TcpStream>,
    leftover: Bytes,
) -> impl Stream<Item = Result<Bytes, actix_http::error::PayloadError>> {
    let first = (!leftover.is_empty()).then_some(leftover);
    futures_util::stream::unfold((io, first), |(io, first)| async move {
        if let Some(bytes) = first {
            return Some((Ok(bytes), (io, None)));
        }
        loop {
            if io.readable().await.is_err() {
                return None;
            }
            // Readiness and `try_read` spend no cooperative budget: without this, a client that
            // sends fast would be read into the frame decoder's buffer without bound before the
            // decoder (and its frame-size and flood limits) ever ran.
            tokio::task::consume_budget().await;
            let read = {
                let mut chunk = [0u8; READ_CHUNK];
                io.try_read(&mut chunk)
                    .map(|n| Bytes::copy_from_slice(&chunk[..n]))
            };
            match read {
                Ok(bytes) if bytes.is_empty() => return None,
                Ok(bytes) => return Some((Ok(bytes), (io, None))),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    return Some((Err(actix_http::error::PayloadError::Io(e)), (io, None)));
                }
            }
        }
    })
}

/// Writes each frame the session yields; when the session ends, closes the socket gracefully.
///
/// The task lives as long as the socket, so its future is kept small: the states that only
/// exist while writing or closing are boxed (allocated for that moment), not inline.
async fn write_all(
    mut frames: std::pin::Pin<Box<impl Stream<Item = Result<Bytes, actix_web::Error>>>>,
    io: Arc<TcpStream>,
    stall: std::time::Duration,
    _open: OpenSocket,
) {
    while let Some(Ok(frame)) = frames.next().await {
        if Box::pin(write_within(&io, &frame, stall)).await.is_err() {
            STALLED.inc();
            return;
        }
    }
    // The session (and the read side it held) is gone; the close frame is on its way.
    drop(frames);
    let _ = socket2::SockRef::from(&*io).shutdown(std::net::Shutdown::Write);
    Box::pin(drain(&io, Instant::now() + LINGER)).await;
}

/// Writes `bytes`, failing when the socket takes none of them for `stall` (a slow client that
/// keeps taking bytes is never cut off, however long a large replay takes it).
async fn write_within(
    io: &TcpStream,
    mut bytes: &[u8],
    stall: std::time::Duration,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        tokio::time::timeout(stall, io.writable())
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        match io.try_write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads and discards until the client closes, or the deadline.
async fn drain(io: &TcpStream, deadline: Instant) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !matches!(tokio::time::timeout(left, io.readable()).await, Ok(Ok(())))
        {
            return;
        }
        tokio::task::consume_budget().await;
        let mut sink = [0u8; 512];
        match io.try_read(&mut sink) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_write_the_client_never_takes_fails_after_the_stall_time() {
        // Tokio's clock stands still and jumps to the next timer once every task waits (here
        // on a socket that will never take more), so the stall is timed exactly, not slept.
        tokio::time::pause();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        // The client connects and never reads.
        let _client = client.connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        let big = vec![b'x'; 8 << 20];
        let started = tokio::time::Instant::now();
        let stall = std::time::Duration::from_millis(300);
        let result = write_within(&server, &big, stall).await;
        assert_eq!(
            result.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::TimedOut)
        );
        // At the stall time, not before and not later (the timer's granularity is 1 ms).
        let waited = started.elapsed();
        assert!(waited >= stall, "{waited:?}");
        assert!(
            waited <= stall + std::time::Duration::from_millis(1),
            "{waited:?}"
        );
        // A client that reads gets everything.
        let small = vec![b'y'; 1024];
        let listener2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr2 = listener2.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut stream = tokio::net::TcpStream::connect(addr2).await.unwrap();
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got).await;
            got.len()
        });
        let (server2, _) = listener2.accept().await.unwrap();
        write_within(&server2, &small, stall).await.unwrap();
        drop(server2);
        assert_eq!(reader.await.unwrap_or_default(), 1024);
    }
}
