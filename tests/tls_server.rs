//! The kit's gRPC server over TLS (feature `tls`), with certificates made by the test (rcgen):
//! ALPN h2 for tonic clients, mutual TLS (a client without a certificate, or with one from
//! another CA, never reaches a handler; a verified client's subject common name is the
//! caller in the logs' `enduser.id`), the peer address still found by the layers, and
//! certificate reloads (SIGHUP, a file change, an explicit reload) that new connections see
//! while open connections keep going.
#![cfg(all(feature = "server", feature = "tls"))]

use std::time::{Duration, Instant};
use tonic::service::Routes;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::{Running, Server};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;
use tonic_blueprint_testkit::{CertFiles, FILE_DESCRIPTOR_SET, TestPki, TestService};

async fn start(vars: &[(&str, String)]) -> Running {
    let mut pairs = vec![
        ("GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR", "off".to_owned()),
    ];
    pairs.extend(vars.iter().cloned());
    let config = Loader::from_pairs(pairs)
        .load()
        .expect("valid configuration");
    Server::new(config)
        .descriptors(FILE_DESCRIPTOR_SET)
        .start(Routes::new(TestService::default().into_server()))
        .await
        .expect("the server starts")
}

/// A TLS channel to `running` trusting `ca_pem`, with a client certificate when given.
async fn connect(
    running: &Running,
    ca_pem: &str,
    client: Option<&CertFiles>,
) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(client) = client {
        tls = tls.identity(Identity::from_pem(&client.cert_pem, &client.key_pem));
    }
    Endpoint::from_shared(format!("https://{}", running.local_addr()))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

async fn echo(channel: Channel, text: &str) -> Result<String, String> {
    TestServiceClient::new(channel)
        .unary(TestRequest::echo(text))
        .await
        .map(|r| String::from_utf8_lossy(&r.into_inner().payload).into_owned())
        .map_err(|s| format!("{s:?}"))
}

/// Connects and calls once: the handshake (TLS 1.3 verifies the client's certificate after
/// the client thinks it is done) and the call either both work or the call fails.
async fn call(
    running: &Running,
    ca_pem: &str,
    client: Option<&CertFiles>,
) -> Result<String, String> {
    echo(connect(running, ca_pem, client).await?, "hello").await
}

fn tls_vars(server: &CertFiles) -> Vec<(&'static str, String)> {
    vec![
        ("TLS_CERT_FILE", server.cert.display().to_string()),
        ("TLS_KEY_FILE", server.key.display().to_string()),
    ]
}

#[tokio::test]
async fn tls_serves_tonic_clients_and_refuses_plaintext() {
    let pki = TestPki::new("grpc");
    let running = start(&tls_vars(&pki.server("grpc-server", &[]))).await;
    assert!(running.is_tls());

    assert_eq!(
        call(&running, &pki.ca_pem(), None).await.as_deref(),
        Ok("hello")
    );
    // A client that trusts another CA does not accept the server.
    let other = TestPki::new("other");
    assert!(call(&running, &other.ca_pem(), None).await.is_err());
    // Plaintext HTTP/2 on the TLS port gets nowhere: never a silent downgrade.
    let plaintext = async {
        let channel = Endpoint::from_shared(format!("http://{}", running.local_addr()))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        echo(channel, "plain").await
    };
    assert!(plaintext.await.is_err());
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn mutual_tls_requires_a_certificate_of_the_client_ca() {
    let pki = TestPki::new("mtls");
    let mut vars = tls_vars(&pki.server("grpc-server", &[]));
    vars.push(("TLS_CLIENT_CA_FILE", pki.ca_file().display().to_string()));
    let running = start(&vars).await;

    let alice = pki.client("alice", None);
    assert_eq!(
        call(&running, &pki.ca_pem(), Some(&alice)).await.as_deref(),
        Ok("hello")
    );
    // No certificate: refused in the handshake.
    let none = call(&running, &pki.ca_pem(), None).await;
    assert!(none.is_err(), "{none:?}");
    // A certificate from another CA, with a name the server would otherwise accept.
    let rogue = TestPki::new("rogue");
    let mallory = rogue.client("alice", None);
    let refused = call(&running, &pki.ca_pem(), Some(&mallory)).await;
    assert!(refused.is_err(), "{refused:?}");
    // The server keeps serving verified clients after refusing others.
    assert_eq!(
        call(&running, &pki.ca_pem(), Some(&alice)).await.as_deref(),
        Ok("hello")
    );
    running.shutdown().await.expect("clean shutdown");
}

/// Every test's logs (one global subscriber: thread-local ones miss events of other
/// threads); tests find their own lines by request id.
fn logs() -> &'static tonic_blueprint_testkit::Captured {
    static LOGS: std::sync::OnceLock<tonic_blueprint_testkit::Captured> =
        std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = tonic_blueprint_testkit::Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
}

#[tokio::test]
async fn the_client_certificate_names_the_caller_in_the_logs() {
    let logs = logs();
    {
        let pki = TestPki::new("identity");
        for (mode, client, expected) in [
            ("cn", pki.client("alice", None), "alice"),
            (
                "san",
                pki.client("bob", Some("spiffe://example.test/ns/pay/sa/bob")),
                "spiffe://example.test/ns/pay/sa/bob",
            ),
        ] {
            let mut vars = tls_vars(&pki.server("grpc-server", &[]));
            vars.push(("TLS_CLIENT_CA_FILE", pki.ca_file().display().to_string()));
            vars.push(("AUTH_MTLS_IDENTITY", mode.to_owned()));
            // No token verifier at all: the certificate alone authenticates.
            let running = start(&vars).await;
            let channel = connect(&running, &pki.ca_pem(), Some(&client))
                .await
                .expect("connect");
            let mut request = tonic::Request::new(TestRequest::echo("who"));
            request
                .metadata_mut()
                .insert("x-request-id", format!("mtls-{mode}").parse().expect("id"));
            TestServiceClient::new(channel)
                .unary(request)
                .await
                .expect("a verified client is authenticated");
            running.shutdown().await.expect("clean shutdown");
            let text = logs.text();
            let line = text
                .lines()
                .find(|l| l.contains(&format!("mtls-{mode}")) && l.contains("finished"))
                .unwrap_or_else(|| panic!("no finishing line for mtls-{mode} in\n{text}"));
            assert!(
                line.contains(&format!("enduser.id={expected}"))
                    || line.contains(&format!("enduser.id=\"{expected}\"")),
                "{line}"
            );
            // The peer address is found behind TLS too.
            assert!(line.contains("peer.address=127.0.0.1:"), "{line}");
        }
    }
}

/// Writes `files`' certificate and key over the server's.
fn install(server: &CertFiles, files: &CertFiles) {
    std::fs::write(&server.cert, &files.cert_pem).expect("write the certificate");
    std::fs::write(&server.key, &files.key_pem).expect("write the key");
}

/// Polls until a new connection trusting `ca_pem` only succeeds, within 10 s.
async fn until_served_with(running: &Running, ca_pem: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match call(running, ca_pem, None).await {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => {
                panic!("new connections never got the new certificate: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn a_reload_serves_new_connections_the_new_certificate_and_keeps_open_ones() {
    let old_ca = TestPki::new("old");
    let new_ca = TestPki::new("new");
    // The server's files, in a place the test rewrites.
    let files = old_ca.server("grpc-server", &[]);
    let mut vars = tls_vars(&files);
    vars.push(("TLS_RELOAD_SECONDS", "0".to_owned()));
    let running = start(&vars).await;

    let open = connect(&running, &old_ca.ca_pem(), None)
        .await
        .expect("connect");
    assert_eq!(echo(open.clone(), "before").await.as_deref(), Ok("before"));

    // A broken key is refused and the old certificate stays in use.
    std::fs::write(&files.key, "not a key").expect("write");
    let error = running.reload_tls().expect_err("a broken key").to_string();
    assert!(error.contains("TLS_KEY_FILE"), "{error}");
    assert!(call(&running, &old_ca.ca_pem(), None).await.is_ok());

    // SIGHUP: the new CA's certificate for new connections.
    install(&files, &new_ca.server("grpc-server", &[]));
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success());
    until_served_with(&running, &new_ca.ca_pem()).await;
    assert!(call(&running, &old_ca.ca_pem(), None).await.is_err());
    // The connection opened before is still the same one: a new connection trusting only
    // the old CA would fail now, so this call proves it was never dropped.
    assert_eq!(echo(open.clone(), "after").await.as_deref(), Ok("after"));

    // An explicit reload, as SIGHUP does.
    install(&files, &old_ca.server("grpc-server", &[]));
    running.reload_tls().expect("valid files");
    assert!(call(&running, &old_ca.ca_pem(), None).await.is_ok());
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn changed_files_are_picked_up_without_a_signal() {
    let old_ca = TestPki::new("old");
    let new_ca = TestPki::new("new");
    let files = old_ca.server("grpc-server", &[]);
    let mut vars = tls_vars(&files);
    vars.push(("TLS_RELOAD_SECONDS", "1".to_owned()));
    let running = start(&vars).await;
    let open = connect(&running, &old_ca.ca_pem(), None)
        .await
        .expect("connect");
    install(&files, &new_ca.server("grpc-server", &[]));
    until_served_with(&running, &new_ca.ca_pem()).await;
    assert_eq!(echo(open, "still").await.as_deref(), Ok("still"));
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn unusable_tls_files_stop_the_start_naming_the_variable() {
    let pki = TestPki::new("bad");
    let server = pki.server("grpc-server", &[]);
    let other = pki.server("other", &[]);
    for (vars, variable) in [
        (
            vec![
                ("TLS_CERT_FILE", "/nonexistent/cert.pem".to_owned()),
                ("TLS_KEY_FILE", server.key.display().to_string()),
            ],
            "TLS_CERT_FILE",
        ),
        (
            vec![
                ("TLS_CERT_FILE", server.cert.display().to_string()),
                ("TLS_KEY_FILE", other.key.display().to_string()),
            ],
            "TLS_KEY_FILE",
        ),
        (
            vec![
                ("TLS_CERT_FILE", server.cert.display().to_string()),
                ("TLS_KEY_FILE", server.key.display().to_string()),
                ("TLS_CLIENT_CA_FILE", server.key.display().to_string()),
            ],
            "TLS_CLIENT_CA_FILE",
        ),
    ] {
        let mut pairs = vec![
            ("GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("METRICS_ADDR", "off".to_owned()),
        ];
        pairs.extend(vars);
        let config = Loader::from_pairs(pairs)
            .load()
            .expect("valid configuration");
        let error = Server::new(config)
            .start(Routes::new(TestService::default().into_server()))
            .await
            .expect_err("unusable TLS files")
            .to_string();
        assert!(error.starts_with(variable), "{variable}: {error}");
    }
    // Half a pair is a configuration error before anything starts.
    let error = Loader::from_pairs([("TLS_CERT_FILE", "/a.pem")])
        .load()
        .expect_err("no key")
        .to_string();
    assert!(error.contains("TLS_KEY_FILE"), "{error}");
}
