//! The real binary: started with a certificate, sent a real SIGHUP after the files change.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Pki, follower_receives_over};
use crate::helpers::{ServerProcess, dev_token, get_text_from};

#[actix_web::test]
async fn sighup_reloads_the_certificate_of_the_running_binary() {
    let pki = Pki::new();
    let (old, new) = (pki.leaf("old"), pki.leaf("new"));
    pki.install(&old);
    let (cert, key) = (pki.cert_path(), pki.key_path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut server = ServerProcess::start(&[
        ("TLS_CERT_PATH", cert.as_str()),
        ("TLS_KEY_PATH", key.as_str()),
    ])
    .await;
    let address = server.address.clone();
    let base = format!("https://{address}");
    let http = pki.https_client();
    let sign_in = |handle: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move { dev_token(&http, &base, handle).await }
    };
    let (alice, bob) = (sign_in("alice").await, sign_in("bob").await);
    let res = http
        .put(format!("{base}/api/v1/users/alice/follow"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (mut bob_ws, served) = pki.wss(&address, &bob).await;
    assert_eq!(served, old.der);

    let pid = Pid::from_raw(i32::try_from(server.child.id()).unwrap());
    pki.install(&new);
    let sent = Instant::now();
    kill(pid, Signal::SIGHUP).unwrap();
    let swapped_after = loop {
        let (_, served) = pki.connect(&address).await;
        if served == new.der {
            break sent.elapsed();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The websocket from before the signal still works and receives.
    follower_receives_over(&http, &base, &alice, &mut bob_ws, "after SIGHUP").await;

    // A broken file and another SIGHUP: the process lives on, serving the new certificate.
    pki.write_cert("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
    kill(pid, Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .collect_log()
        .iter()
        .any(|l| l.contains("TLS certificate reload failed"))
    {
        assert!(
            Instant::now() < deadline,
            "the failed reload was not logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        server.child.try_wait().ok().flatten().is_none(),
        "the server exited"
    );
    let (_, served) = pki.connect(&address).await;
    assert_eq!(served, new.der);
    follower_receives_over(&http, &base, &alice, &mut bob_ws, "after a failed reload").await;
    let metrics = get_text_from(&http, &format!("{base}/metrics")).await;
    assert_eq!(
        super::series(&metrics, "aisocial_tls_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        super::series(&metrics, "aisocial_tls_reloads_total{result=\"failed\"}"),
        1.0
    );
    println!("SIGHUP: the new certificate served {swapped_after:?} after the signal");
}

/// 1,000 wss connect/disconnect cycles (half closed politely, half dropped) leave no session,
/// open file or memory behind in the real binary.
#[actix_web::test]
async fn wss_connect_disconnect_cycles_leave_nothing_behind() {
    const POOL_GROWTH: usize = 4;
    let pki = Pki::new();
    let leaf = pki.leaf("cycles");
    pki.install(&leaf);
    let (cert, key) = (pki.cert_path(), pki.key_path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let server = ServerProcess::start(&[
        ("TLS_CERT_PATH", cert.as_str()),
        ("TLS_KEY_PATH", key.as_str()),
        ("RATE_LIMIT_IP_PER_MIN", "100000000"),
        ("RATE_LIMIT_USER_PER_MIN", "100000000"),
        ("RATE_LIMIT_AUTH_PER_MIN", "100000"),
        ("RUST_LOG", "warn,aisocial::startup=info"),
        ("DATABASE_POOL_SIZE", "4"),
    ])
    .await;
    let address = server.address.clone();
    let base = format!("https://{address}");
    let http = pki.https_client();
    let mut tokens = Vec::new();
    for n in 0..20 {
        tokens.push(dev_token(&http, &base, &format!("tls_churn_{n}")).await);
    }
    let pki = &pki;
    let cycle = |token: String, rounds: usize| {
        let address = address.clone();
        async move {
            for round in 0..rounds {
                let (mut wss, _) = pki.wss(&address, &token).await;
                if round % 2 == 0 {
                    let _ = wss.stream.close(None).await;
                    // Read the server's close and the end of the stream.
                    while let Ok(Some(Ok(_))) =
                        tokio::time::timeout(Duration::from_secs(5), wss.stream.next()).await
                    {
                    }
                }
                drop(wss);
            }
        }
    };
    futures_util::future::join_all(tokens.iter().map(|t| cycle(t.clone(), 10))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fds_before, rss_before) = (server.open_files(), server.rss_bytes());
    futures_util::future::join_all(tokens.iter().map(|t| cycle(t.clone(), 50))).await;
    server
        .assert_cycles_left_nothing(
            "wss churn: 1,000 cycles",
            &http,
            &base,
            (fds_before, rss_before),
            POOL_GROWTH,
        )
        .await;
}
