//! The server's view of itself from `GET /health/system` (what load tests sample).

use serde::{Deserialize, Serialize};

use crate::Error;

/// The figures of `/health/system` a client reads; each is `None` when the server does not
/// report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SystemSample {
    pub rss_bytes: Option<u64>,
    pub open_files: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub websockets: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Wire {
    memory: Memory,
    connections: Connections,
    cpu: Cpu,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Memory {
    process_rss_bytes: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Connections {
    open_files: Option<u64>,
    websockets: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cpu {
    process_seconds: Option<f64>,
}

impl SystemSample {
    /// Reads a `/health/system` answer.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let wire: Wire = serde_json::from_slice(body).map_err(|source| Error::Decode {
            what: "/health/system".into(),
            source,
        })?;
        Ok(Self {
            rss_bytes: wire.memory.process_rss_bytes,
            open_files: wire.connections.open_files,
            cpu_seconds: wire.cpu.process_seconds,
            websockets: wire.connections.websockets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_read_and_absent_figures_are_none() -> Result<(), Error> {
        let body = br#"{"memory":{"process_rss_bytes":1048576,"other":1},"connections":{"open_files":40,"websockets":3},"cpu":{"process_seconds":1.5},"extra":{}}"#;
        assert_eq!(
            SystemSample::parse(body)?,
            SystemSample {
                rss_bytes: Some(1_048_576),
                open_files: Some(40),
                cpu_seconds: Some(1.5),
                websockets: Some(3),
            }
        );
        assert_eq!(SystemSample::parse(b"{}")?, SystemSample::default());
        Ok(())
    }
}
