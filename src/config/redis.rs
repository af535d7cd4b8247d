//! `REDIS_URL`: one URL (a single server, or one node of a cluster, found out on connecting) or
//! a comma-separated list of cluster seed nodes.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// How many messages each lane holds at most.
#[derive(Debug, Clone, Copy)]
pub struct RelayQueues {
    /// Log records, presence, heartbeats: published first.
    pub records: usize,
    /// Ephemeral pushes (`ai.delta`, …): published when no record waits.
    pub pushes: usize,
}

/// What `REDIS_URL` names.
#[derive(Debug, Clone)]
pub enum RedisUrls {
    /// One URL: a single server, or a cluster node used as the seed (asked with `INFO cluster`).
    One(ConnectionInfo),
    /// Several URLs: the seed nodes of a Redis Cluster.
    Seeds(Vec<ConnectionInfo>),
}

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("is empty")]
    Empty,
    #[error("{url:?} is not a Redis URL ({reason}); expected redis://host:6379")]
    NotRedis { url: String, reason: String },
    #[error("a cluster seed must be a TCP address, not {0:?}")]
    NotTcp(String),
}

impl RedisUrls {
    /// Parses `redis://host:port[,redis://host:port…]`; blanks around commas are ignored.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let parts: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let mut infos = Vec::with_capacity(parts.len());
        for part in &parts {
            let info = part
                .into_connection_info()
                .map_err(|e| UrlError::NotRedis {
                    url: redact(part),
                    reason: e.to_string(),
                })?;
            infos.push(info);
        }
        match infos.len() {
            0 => Err(UrlError::Empty),
            1 => Ok(Self::One(infos.remove(0))),
            _ => {
                if let Some(unix) = infos.iter().find(|i| !is_tcp(i.addr())) {
                    return Err(UrlError::NotTcp(unix.addr().to_string()));
                }
                Ok(Self::Seeds(infos))
            }
        }
    }

    /// `host:port` of every URL, comma-separated, without credentials (for logs and messages).
    pub fn display(&self) -> String {
        self.infos()
            .iter()
            .map(|i| i.addr().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn infos(&self) -> &[ConnectionInfo] {
        match self {
            Self::One(info) => std::slice::from_ref(info),
            Self::Seeds(infos) => infos,
        }
    }
}

fn is_tcp(addr: &ConnectionAddr) -> bool {
    matches!(
        addr,
        ConnectionAddr::Tcp(..) | ConnectionAddr::TcpTls { .. }
    )
}

/// A URL with any password replaced, so that an error message never shows it.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(unparseable)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_one_server_or_a_seed() {
        let Ok(RedisUrls::One(info)) = RedisUrls::parse("redis://127.0.0.1:6379") else {
            panic!("one URL");
        };
        assert_eq!(info.addr().to_string(), "127.0.0.1:6379");
    }

    #[test]
    fn a_comma_separated_list_is_cluster_seeds() {
        let urls = RedisUrls::parse("redis://10.0.0.1:7000, redis://10.0.0.2:7001,").unwrap();
        assert!(matches!(urls, RedisUrls::Seeds(ref s) if s.len() == 2));
        assert_eq!(urls.display(), "10.0.0.1:7000,10.0.0.2:7001");
    }

    #[test]
    fn bad_lists_are_refused_without_showing_passwords() {
        assert!(matches!(RedisUrls::parse(" , "), Err(UrlError::Empty)));
        let err = RedisUrls::parse("redis://:secret@10.0.0.1:7000,http://x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("http://x"), "{err}");
        let err = RedisUrls::parse("redis://10.0.0.1:7000,redis+unix:///tmp/redis.sock")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("TCP"), "{err}");
        let err = RedisUrls::parse("redis://:secret@10.0.0.1:7000,ftp://:pw@x/")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("pw"), "{err}");
    }
}
