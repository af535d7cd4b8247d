//! Reading a PEM certificate chain and its private key into a rustls `CertifiedKey`, checked
//! (the key fits the certificate, the validity is readable) before anything is served with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why a certificate or key could not be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid PEM: {detail}", path.display())]
    Pem { path: PathBuf, detail: String },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("the key in {} cannot serve the certificate in {}: {detail}", key.display(), cert.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error("{}: the first certificate's validity (notAfter) cannot be read: {detail}", path.display())]
    Validity { path: PathBuf, detail: String },
}

/// A certificate ready to serve, and when it expires.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// `notAfter` of the end-entity certificate, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// Reads the chain (end-entity certificate first) and its key.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<Loaded, LoadError> {
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::Pem {
            path: cert_path.to_owned(),
            detail: e.to_string(),
        })?;
    let Some(end_entity) = chain.first() else {
        return Err(LoadError::NoCertificate {
            path: cert_path.to_owned(),
        });
    };
    let not_after = super::expiry::not_after(end_entity).map_err(|e| LoadError::Validity {
        path: cert_path.to_owned(),
        detail: e.to_string(),
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => LoadError::NoKey {
            path: key_path.to_owned(),
        },
        other => LoadError::Pem {
            path: key_path.to_owned(),
            detail: other.to_string(),
        },
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| LoadError::Unusable {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        not_after,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new() -> Self {
            let dir =
                std::env::temp_dir().join(format!("aisocial-tls-load-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            Self { dir }
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.dir.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn self_signed() -> (String, String) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (cert.pem(), signing_key.serialize_pem())
    }

    #[test]
    fn each_bad_file_is_named() {
        let files = Files::new();
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let cert_path = files.write("cert.pem", &cert);
        let key_path = files.write("key.pem", &key);
        let loaded = load(&cert_path, &key_path).unwrap();
        assert!(loaded.not_after > 0);

        let missing = files.dir.join("missing.pem");
        assert!(matches!(
            load(&missing, &key_path),
            Err(LoadError::Read { .. })
        ));
        let empty = files.write("empty.pem", "");
        assert!(matches!(
            load(&empty, &key_path),
            Err(LoadError::NoCertificate { .. })
        ));
        assert!(matches!(
            load(&cert_path, &empty),
            Err(LoadError::NoKey { .. })
        ));
        let torn = files.write("torn.pem", &cert[..cert.len() / 2]);
        assert!(matches!(load(&torn, &key_path), Err(LoadError::Pem { .. })));
        // A certificate file given as the key, and a key that belongs to another certificate.
        assert!(load(&cert_path, &cert_path).is_err());
        let wrong = files.write("wrong.pem", &other_key);
        let error = load(&cert_path, &wrong).err();
        assert!(
            matches!(error, Some(LoadError::Unusable { .. })),
            "{error:?}"
        );
        assert!(error.is_some_and(|e| e.to_string().contains("wrong.pem")));
    }
}
