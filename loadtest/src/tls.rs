//! TLS for the load tests: `tls-cert` writes a throwaway CA and a server certificate for a
//! bench server (no openssl CLI needed), and `--ca` makes clients trust that CA for https and
//! wss.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

#[derive(clap::Args)]
pub struct CertArgs {
    /// Folder to write `ca.pem`, `cert.pem` and `key.pem` into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Names the server certificate is valid for (DNS names or IPs).
    #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
    names: Vec<String>,
}

/// Writes a CA (`ca.pem`) and a server certificate signed by it (`cert.pem`, `key.pem`).
pub fn write_certificates(args: &CertArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "aisocial load-test CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(args.names.clone())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "aisocial bench server");
    let cert = params.signed_by(&key, &issuer)?;
    for (name, contents) in [
        ("ca.pem", ca_cert.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ] {
        let path = args.out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "tls-cert: wrote ca.pem, cert.pem and key.pem to {}",
        args.out.display()
    );
    Ok(())
}

/// An HTTP client that trusts only the CA in `ca` (a PEM file), or the default one without.
pub fn http_client(ca: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let Some(ca) = ca else {
        return Ok(reqwest::Client::new());
    };
    let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    let certificate = reqwest::Certificate::from_pem(&pem)?;
    Ok(reqwest::Client::builder()
        .tls_certs_only([certificate])
        .build()?)
}

/// Connects TLS over `tcp` to `host`, trusting only the CA in `ca`.
#[derive(Clone)]
pub struct Connector {
    connector: tokio_rustls::TlsConnector,
}

impl Connector {
    pub fn new(ca: &Path) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading {}", ca.display()))?
        {
            roots.add(certificate.with_context(|| format!("{} is not PEM", ca.display()))?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, tcp).await
    }
}
