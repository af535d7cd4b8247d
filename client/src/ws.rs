//! Opening the event feed: `GET /api/v1/ws[?since=ID]` with `Authorization: Bearer <token>`
//! (or `?ticket=T`, the single-use ticket of `POST /api/v1/ws/ticket`, for clients that cannot
//! set headers), then `hello`. The steps are separate ([`request`], [`connect`], [`handshake`],
//! [`read_hello`]) for callers that bind a source address, wrap the stream in TLS, or time
//! each step; [`upgrade`] does all but `hello` over plain TCP, and [`open`] all of them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;

use crate::{Error, Hello};

/// A websocket to the server (over plain TCP unless given another stream).
pub type Socket<S = TcpStream> = WebSocketStream<S>;

/// How long each step of [`open`] may take by default.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`open`] waits for `hello` by default.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// The websocket endpoint of the server at `base_url` (`http` → `ws`, `https` → `wss`),
/// resuming after `since` when given.
pub fn endpoint(base_url: &str, since: Option<i64>) -> String {
    let base = base_url.trim_end_matches('/').replacen("http", "ws", 1);
    match since {
        Some(since) => format!("{base}/api/v1/ws?since={since}"),
        None => format!("{base}/api/v1/ws"),
    }
}

/// The websocket endpoint of the server at `base_url` opened with the single-use `ticket`
/// instead of a bearer token, resuming after `since` when given.
pub fn ticket_endpoint(base_url: &str, ticket: &str, since: Option<i64>) -> String {
    let url = format!("{}?ticket={ticket}", endpoint(base_url, None));
    match since {
        Some(since) => format!("{url}&since={since}"),
        None => url,
    }
}

/// The upgrade request for `url` (a `ws://` or `wss://` URL), with `token` as its bearer
/// token when given.
pub fn request(url: &str, token: Option<&str>) -> Result<Request, Error> {
    let mut request = url
        .into_client_request()
        .map_err(|e| Error::BadRequest(format!("{url}: {e}")))?;
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::BadRequest("the token is no header value".into()))?;
        request.headers_mut().insert("authorization", value);
    }
    Ok(request)
}

/// Where and how to open the TCP connection of a websocket.
#[derive(Clone, Copy, Debug)]
pub struct Connect {
    /// The socket's receive buffer in bytes, set before connecting so the advertised window
    /// stays small (a slow reader).
    pub recv_buffer: Option<u32>,
    /// The local address to connect from (port chosen by the system).
    pub source: Option<IpAddr>,
    /// How long the TCP connect may take.
    pub timeout: Duration,
}

impl Default for Connect {
    fn default() -> Self {
        Self {
            recv_buffer: None,
            source: None,
            timeout: STEP_TIMEOUT,
        }
    }
}

/// The address of the request's host (a literal IP, else the first the resolver gives).
pub async fn target(request: &Request) -> Result<SocketAddr, Error> {
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or_else(|| Error::BadRequest("no host in the URL".into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let secure = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| Error::Io {
            what: "resolve",
            source,
        })?
        .next()
        .ok_or_else(|| Error::BadRequest(format!("{host} resolves to no address")))
}

/// A TCP connection to `target`, made as `options` say (no Nagle delay).
pub async fn connect(target: SocketAddr, options: &Connect) -> Result<TcpStream, Error> {
    let io = |what| move |source| Error::Io { what, source };
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io("socket"))?;
    if let Some(bytes) = options.recv_buffer {
        socket.set_recv_buffer_size(bytes).map_err(io("socket"))?;
    }
    if let Some(source) = options.source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(io("bind"))?;
    }
    let stream = tokio::time::timeout(options.timeout, socket.connect(target))
        .await
        .map_err(|_| Error::Timeout("connect"))?
        .map_err(io("connect"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The websocket upgrade over `stream`; a status instead of 101 is [`Error::Refused`] (with
/// its `Retry-After`).
pub async fn handshake<S>(request: Request, stream: S) -> Result<Socket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (ws, _response) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(ws)
}

/// Reads until `hello` (control frames are skipped): a close before it is
/// [`Error::ClosedBeforeHello`] with its code, another text frame [`Error::NotHello`].
pub async fn read_hello<S>(ws: &mut Socket<S>) -> Result<Hello, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    read_hello_text(ws).await.map(|(hello, _)| hello)
}

/// [`read_hello`], and the frame's text as the server sent it (for callers that read fields
/// [`Hello`] does not name).
pub async fn read_hello_text<S>(ws: &mut Socket<S>) -> Result<(Hello, String), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let hello = Hello::parse(&text)?;
                return Ok((hello, text.to_string()));
            }
            Some(Ok(message @ Message::Close(_))) => {
                return Err(Error::ClosedBeforeHello(
                    crate::close_code(&message).unwrap_or(1005),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Err(Error::DroppedBeforeHello),
        }
    }
}

/// Connects to the request's host as `options` say and upgrades, each step within
/// [`STEP_TIMEOUT`]: the websocket before any frame (no `hello` read).
pub async fn upgrade_request(request: Request, options: &Connect) -> Result<Socket, Error> {
    let stream = connect(target(&request).await?, options).await?;
    tokio::time::timeout(STEP_TIMEOUT, handshake(request, stream))
        .await
        .map_err(|_| Error::Timeout("upgrade"))?
}

/// Upgrades to `token`'s feed on the server at `base_url` (resuming after `since` when given)
/// over plain TCP, without reading `hello`.
pub async fn upgrade(
    base_url: &str,
    token: &str,
    since: Option<i64>,
    options: &Connect,
) -> Result<Socket, Error> {
    upgrade_request(request(&endpoint(base_url, since), Some(token))?, options).await
}

/// [`upgrade`] with a single-use `ticket` in the query instead of a bearer token.
pub async fn upgrade_with_ticket(
    base_url: &str,
    ticket: &str,
    since: Option<i64>,
    options: &Connect,
) -> Result<Socket, Error> {
    upgrade_request(
        request(&ticket_endpoint(base_url, ticket, since), None)?,
        options,
    )
    .await
}

/// Reads `hello` on a fresh socket within [`HELLO_TIMEOUT`].
async fn hello_within(mut ws: Socket) -> Result<(Socket, Hello), Error> {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_hello(&mut ws))
        .await
        .map_err(|_| Error::Timeout("hello"))??;
    Ok((ws, hello))
}

/// Opens an authenticated feed on the server at `base_url` (resuming after `since` when
/// given) over plain TCP, and reads `hello`: each step within [`STEP_TIMEOUT`], `hello`
/// within [`HELLO_TIMEOUT`].
pub async fn open(
    base_url: &str,
    token: &str,
    since: Option<i64>,
    options: &Connect,
) -> Result<(Socket, Hello), Error> {
    hello_within(upgrade(base_url, token, since, options).await?).await
}

/// [`open`] with a single-use `ticket` instead of a bearer token.
pub async fn open_with_ticket(
    base_url: &str,
    ticket: &str,
    since: Option<i64>,
    options: &Connect,
) -> Result<(Socket, Hello), Error> {
    hello_within(upgrade_with_ticket(base_url, ticket, since, options).await?).await
}

/// Opens a websocket to `url` (no token, no `hello` expected: another server, an echo).
pub async fn open_plain(url: &str, options: &Connect) -> Result<Socket, Error> {
    upgrade_request(request(url, None)?, options).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_scheme_and_carry_since() {
        assert_eq!(
            endpoint("http://h:1/", Some(7)),
            "ws://h:1/api/v1/ws?since=7"
        );
        assert_eq!(endpoint("https://h", None), "wss://h/api/v1/ws");
        assert_eq!(
            ticket_endpoint("http://h:1", "t1", None),
            "ws://h:1/api/v1/ws?ticket=t1"
        );
        assert_eq!(
            ticket_endpoint("https://h/", "t1", Some(4)),
            "wss://h/api/v1/ws?ticket=t1&since=4"
        );
    }

    #[tokio::test]
    async fn the_request_carries_the_bearer_token_and_its_target() -> Result<(), Error> {
        let with = request(&endpoint("http://127.0.0.1:9", Some(3)), Some("tok"))?;
        assert_eq!(
            with.headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer tok")
        );
        assert_eq!(with.uri().query(), Some("since=3"));
        assert_eq!(target(&with).await?, SocketAddr::from(([127, 0, 0, 1], 9)));
        let secure = request("wss://[::1]/api/v1/ws", None)?;
        assert!(secure.headers().get("authorization").is_none());
        assert_eq!(target(&secure).await?.port(), 443);
        assert!(matches!(
            request("ws://h", Some("a\nb")),
            Err(Error::BadRequest(_))
        ));
        Ok(())
    }
}
