//! One error type for the client: transport, an unexpected status, an answer that does not
//! parse, and the websocket's own failures before `hello`.

/// What went wrong with a call or a socket.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request did not get an answer (connection refused, reset, timed out).
    #[error("{what}: {source}")]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a status the call does not expect.
    #[error("{what} answered {status}")]
    Status {
        what: String,
        status: u16,
        /// `Retry-After`, verbatim, on a 429 or 503.
        retry_after: Option<String>,
    },
    /// The answer's body is not what the call expects.
    #[error("{what}: unexpected answer: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A URL or header that cannot be made into a request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A socket-level failure (resolve, bind, connect).
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A step did not finish in time (`connect`, `upgrade`, `hello`).
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The websocket upgrade was answered with a status instead of 101 (503 or 429 with
    /// `Retry-After` when the node or a cap refuses the session).
    #[error("websocket upgrade refused with {status}")]
    Refused {
        status: u16,
        retry_after: Option<String>,
    },
    /// The websocket failed (handshake or reading).
    #[error("websocket: {0}")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The server closed the socket before `hello`, with this close code.
    #[error("closed before hello ({0})")]
    ClosedBeforeHello(u16),
    /// The socket ended (or failed) before `hello`.
    #[error("dropped before hello")]
    DroppedBeforeHello,
    /// The first text frame was not `hello`.
    #[error("the first frame was not hello")]
    NotHello,
    /// The server ended the session for good (suspended 4003, revoked or a policy broken 1008,
    /// a frame too big 1009, a protocol error 1002; 401: the token pair cannot be renewed): a
    /// reconnect cannot help.
    #[error("the server ended the session ({0})")]
    Ended(u16),
}

impl Error {
    /// The HTTP status of a refused call or upgrade.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } | Error::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the call timed out (reqwest's own timeout, or a step of the websocket).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Transport { source, .. } => source.is_timeout(),
            Error::Timeout(_) => true,
            _ => false,
        }
    }

    pub(crate) fn transport(what: impl Into<String>) -> impl FnOnce(reqwest::Error) -> Self {
        let what = what.into();
        move |source| Error::Transport { what, source }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => Error::Refused {
                status: response.status().as_u16(),
                retry_after: response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            },
            other => Error::WebSocket(Box::new(other)),
        }
    }
}
