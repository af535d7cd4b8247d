//! A TCP proxy in front of PostgreSQL that breaks a connection on cue: when a client sends
//! bytes holding a pattern (`ROLLBACK`, `COMMIT`, a `SET`), that connection either freezes
//! (nothing more passes either way and no close is passed on, like a network partition) or is
//! cut just after the message reached the server (the server acts on it; its answer is lost).
//! Other connections, and this one before the cue, pass untouched.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// What happens to a connection whose client sends the pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The message is held back, and so is everything after it in both directions; neither
    /// side hears of the other closing.
    Freeze,
    /// The message reaches the server; then both sides are closed, and whatever the server
    /// answered is dropped.
    CutAfter,
}

type Trigger = Option<(Vec<u8>, Fault)>;

pub struct FaultProxy {
    pub port: u16,
    trigger: Arc<Mutex<Trigger>>,
    fired: Arc<AtomicUsize>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

/// One proxied connection's state, shared by its two pumps.
#[derive(Default)]
struct Link {
    frozen: AtomicBool,
    cut: AtomicBool,
    closing: Notify,
}

/// Whether `needle` occurs in `window` ending past its first `seen` bytes (a match within what
/// was seen before was judged then).
fn arrives(window: &[u8], seen: usize, needle: &[u8]) -> bool {
    !needle.is_empty()
        && window
            .windows(needle.len())
            .enumerate()
            .any(|(at, w)| w == needle && at + needle.len() > seen)
}

/// Holds `halves` open until the proxy is dropped (which aborts this task).
async fn hold<T>(halves: T) {
    std::future::pending::<()>().await;
    drop(halves);
}

/// Client to server: watches for the trigger.
async fn upstream(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    link: Arc<Link>,
    trigger: Arc<Mutex<Trigger>>,
    fired: Arc<AtomicUsize>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    // The end of the previous chunk, so a pattern split between two reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        let armed = trigger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut window = tail.clone();
        window.extend_from_slice(chunk);
        match armed {
            Some((pattern, fault)) if arrives(&window, tail.len(), &pattern) => {
                fired.fetch_add(1, Ordering::SeqCst);
                match fault {
                    Fault::Freeze => {
                        link.frozen.store(true, Ordering::SeqCst);
                        hold((from, to)).await;
                        return;
                    }
                    Fault::CutAfter => {
                        link.cut.store(true, Ordering::SeqCst);
                        let _ = to.write_all(chunk).await;
                        let _ = to.flush().await;
                        // Time for the server to act on it before it sees the close.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let _ = to.shutdown().await;
                        link.closing.notify_one();
                        return;
                    }
                }
            }
            _ => {
                if to.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
        let keep = window.len().min(64);
        tail = window[window.len() - keep..].to_vec();
    }
    if link.frozen.load(Ordering::SeqCst) {
        hold(to).await;
        return;
    }
    let _ = to.shutdown().await;
}

/// Server to client: passes answers on until the connection is frozen or cut.
async fn downstream(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: Arc<Link>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            () = link.closing.notified() => break,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if link.frozen.load(Ordering::SeqCst) {
            hold((from, to)).await;
            return;
        }
        if link.cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    if link.frozen.load(Ordering::SeqCst) {
        hold(to).await;
        return;
    }
    let _ = to.shutdown().await;
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream_addr: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let trigger: Arc<Mutex<Trigger>> = Arc::default();
        let fired = Arc::new(AtomicUsize::new(0));
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let upstream_addr = upstream_addr.to_owned();
        let (accept_trigger, accept_fired, accept_tasks) =
            (Arc::clone(&trigger), Arc::clone(&fired), Arc::clone(&tasks));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream_addr).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let link = Arc::new(Link::default());
                let up = tokio::spawn(upstream(
                    client_read,
                    server_write,
                    Arc::clone(&link),
                    Arc::clone(&accept_trigger),
                    Arc::clone(&accept_fired),
                ));
                let down = tokio::spawn(downstream(server_read, client_write, link));
                let mut tasks = accept_tasks.lock().unwrap_or_else(PoisonError::into_inner);
                tasks.push(up.abort_handle());
                tasks.push(down.abort_handle());
            }
        });
        tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(accept.abort_handle());
        Self {
            port,
            trigger,
            fired,
            tasks,
        }
    }

    /// From now on, the next message holding `pattern` on any connection meets `fault`.
    pub fn arm(&self, pattern: &str, fault: Fault) {
        *self.trigger.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((pattern.as_bytes().to_vec(), fault));
    }

    /// New messages pass again (connections already frozen stay frozen).
    pub fn disarm(&self) {
        *self.trigger.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// How many times the fault struck.
    pub fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}
