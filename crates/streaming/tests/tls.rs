//! The streaming server over TLS: URLs are https, a WebSocket exec works through TLS, and a
//! bad certificate file stops the start with an error naming it. The certificate is made with
//! the openssl command-line tool.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use crust_streaming::{Config, Server};
use futures::StreamExt;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (apt-get install openssl)")
        .success();
    assert!(ok, "openssl made the certificate");
    (cert, key)
}

#[tokio::test]
async fn exec_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let (server, _fake) = start(Config {
        tls: Some((cert.clone(), key)),
        ..Config::default()
    })
    .await;
    assert!(server.base_url().starts_with("https://127.0.0.1:"));
    let url = server
        .get_exec(exec_req(&["exit3"], false, true, true, false))
        .unwrap();
    let rest = url.strip_prefix("https://").unwrap();
    let addr = &rest[..rest.find('/').unwrap()];

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the streaming server");
    let mut req = url
        .replacen("https://", "wss://", 1)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    let mut status = Vec::new();
    while let Some(m) = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
    {
        match m {
            Ok(Message::Binary(b)) if b.first() == Some(&3) => status.extend_from_slice(&b[1..]),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let status = String::from_utf8_lossy(&status);
    assert!(status.contains("NonZeroExitCode"), "{status}");
    assert!(status.contains("\"3\""), "{status}");
}

#[tokio::test]
async fn a_bad_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = Server::start(
        Config {
            tls: Some((cert, dir.path().join("key.pem"))),
            ..Config::default()
        },
        Arc::new(Fake::default()),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("cert.pem"), "{err}");
}
