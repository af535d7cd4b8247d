//! Logging: structured JSON (or text) through `tracing`, filtered by `RUST_LOG`. JSON lines
//! carry the node id once it is known (see [`set_node`]); request lines carry the request id
//! and, once authenticated, the user id (fields of the request span).

use std::io::{self, Write};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// `{"node":"<id>",`: what every JSON line starts with once the node id is set.
static NODE_PREFIX: OnceLock<Vec<u8>> = OnceLock::new();

/// Names this node in every JSON log line from now on (the first call wins).
pub fn set_node(node_id: &str) {
    let name = serde_json::to_string(node_id).unwrap_or_else(|_| "\"?\"".into());
    let _ = NODE_PREFIX.set(format!("{{\"node\":{name},").into_bytes());
}

/// Writes each formatted event to stderr, adding the node id to JSON lines. The formatter
/// hands over one whole line per write.
struct NodeStamped;

impl Write for NodeStamped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut stderr = io::stderr().lock();
        match (NODE_PREFIX.get(), buf.split_first()) {
            (Some(prefix), Some((b'{', rest))) => {
                // Both parts under the one lock: no other line can come between them.
                stderr.write_all(prefix)?;
                stderr.write_all(rest)?;
                Ok(buf.len())
            }
            _ => stderr.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for NodeStamped {
    type Writer = NodeStamped;

    fn make_writer(&'a self) -> Self::Writer {
        NodeStamped
    }
}

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn,actix_web_actors=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder
            .with_writer(NodeStamped)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_writer(std::io::stderr).try_init(),
    };
}
