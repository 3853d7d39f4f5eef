//! What TLS adds to a unary call: the kit's server with no layers, once over plaintext
//! HTTP/2 and once over TLS 1.3 (rustls on ring, ALPN h2, an ECDSA P-256 certificate made
//! with rcgen), measured in the same run.
//!
//! The handshake is excluded: each client connects once before measuring, and every call
//! reuses that connection, as a long-lived gRPC channel does.
//!
//! - `sequential`: one 64-byte echo at a time (latency: encryption and decryption of one
//!   request and one response, plus their TLS records);
//! - `in_flight_32`: 32 echoes at once on the connection, time per batch (throughput).
//!
//! Criterion's rows run one after the other and drift with the machine, so the bench also
//! prints paired rounds: 11 rounds, each timing 2,000 sequential calls and 200 batches of 32
//! on both connections back to back (the order alternating), and the median of the per-round
//! ratios TLS / plaintext, of wall time and of CPU time (every thread of the process, client
//! and server, from `/proc/self/task/*/schedstat`: less sensitive to a busy machine than
//! wall time).
//!
//! Run: `cargo bench --bench tls --features server,tls`. Compare rows of one run only.

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;
use tonic::service::Routes;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::{PresetStack, Running, Server};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;
use tonic_blueprint_testkit::{TestPki, TestService};

async fn start(tls: Option<(&str, &str)>) -> Running {
    let mut vars = vec![
        ("GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR", "off".to_owned()),
        ("LOG_LEVEL", "off".to_owned()),
    ];
    if let Some((cert, key)) = tls {
        vars.push(("TLS_CERT_FILE", cert.to_owned()));
        vars.push(("TLS_KEY_FILE", key.to_owned()));
    }
    let config = Loader::from_pairs(vars).load().expect("configuration");
    Server::new(config)
        .stack(PresetStack::empty())
        .start(Routes::new(TestService::default().into_server()))
        .await
        .expect("server")
}

async fn connect(running: &Running, ca_pem: Option<&str>) -> TestServiceClient<Channel> {
    let endpoint = match ca_pem {
        None => Endpoint::from_shared(format!("http://{}", running.local_addr())).expect("uri"),
        Some(ca) => Endpoint::from_shared(format!("https://{}", running.local_addr()))
            .expect("uri")
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("localhost"),
            )
            .expect("TLS"),
    };
    TestServiceClient::new(endpoint.connect().await.expect("connect"))
}

fn tls(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pki = TestPki::new("bench");
    let cert = pki.server("bench", &[]);
    let (cert_file, key_file) = (
        cert.cert.display().to_string(),
        cert.key.display().to_string(),
    );
    let (plain, tls, mut clients) = runtime.block_on(async {
        let plain = start(None).await;
        let tls = start(Some((&cert_file, &key_file))).await;
        let clients = vec![
            ("plaintext", connect(&plain, None).await),
            ("tls", connect(&tls, Some(&pki.ca_pem())).await),
        ];
        (plain, tls, clients)
    });
    let request = TestRequest::echo(vec![7u8; 64]);

    let mut group = c.benchmark_group("tls/sequential");
    for (name, client) in &mut clients {
        // Warm the connection (and check it works) before measuring.
        runtime
            .block_on(client.unary(request.clone()))
            .expect("call");
        group.bench_function(*name, |b| {
            b.to_async(&runtime).iter(|| {
                let mut client = client.clone();
                let request = request.clone();
                async move { client.unary(request).await.expect("call") }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("tls/in_flight_32");
    for (name, client) in &mut clients {
        group.bench_function(*name, |b| {
            b.to_async(&runtime).iter(|| {
                let client = client.clone();
                let request = request.clone();
                async move {
                    let mut calls = tokio::task::JoinSet::new();
                    for _ in 0..32 {
                        let mut client = client.clone();
                        let request = request.clone();
                        calls.spawn(async move { client.unary(request).await.map(|_| ()) });
                    }
                    while let Some(call) = calls.join_next().await {
                        call.expect("task").expect("call");
                    }
                }
            })
        });
    }
    group.finish();

    paired_rounds(&runtime, &clients, &request);

    runtime.block_on(async {
        drop(clients);
        plain.shutdown().await.expect("shutdown");
        tls.shutdown().await.expect("shutdown");
    });
}

/// CPU time of every thread of the process so far, in nanoseconds (Linux).
fn cpu_ns() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<f64>().ok())
        .sum()
}

/// Wall and CPU time of `calls` sequential calls, then of `batches` batches of 32, on
/// `client`.
async fn round(
    client: &TestServiceClient<Channel>,
    request: &TestRequest,
    calls: u32,
    batches: u32,
) -> [(Duration, f64); 2] {
    let cpu = cpu_ns();
    let started = std::time::Instant::now();
    for _ in 0..calls {
        client.clone().unary(request.clone()).await.expect("call");
    }
    let sequential = (started.elapsed(), cpu_ns() - cpu);
    let cpu = cpu_ns();
    let started = std::time::Instant::now();
    for _ in 0..batches {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let mut client = client.clone();
            let request = request.clone();
            set.spawn(async move { client.unary(request).await.map(|_| ()) });
        }
        while let Some(call) = set.join_next().await {
            call.expect("task").expect("call");
        }
    }
    [sequential, (started.elapsed(), cpu_ns() - cpu)]
}

fn paired_rounds(
    runtime: &tokio::runtime::Runtime,
    clients: &[(&str, TestServiceClient<Channel>)],
    request: &TestRequest,
) {
    const ROUNDS: usize = 11;
    const CALLS: u32 = 2_000;
    const BATCHES: u32 = 200;
    let (plain, tls) = (&clients[0].1, &clients[1].1);
    // [sequential, 32 in flight] x [wall ratio, cpu ratio, plain wall, tls wall, plain cpu, tls cpu]
    let mut samples = [[(); 6].map(|_| Vec::new()), [(); 6].map(|_| Vec::new())];
    runtime.block_on(async {
        for i in 0..ROUNDS {
            let (p, t) = if i % 2 == 0 {
                let p = round(plain, request, CALLS, BATCHES).await;
                (p, round(tls, request, CALLS, BATCHES).await)
            } else {
                let t = round(tls, request, CALLS, BATCHES).await;
                (round(plain, request, CALLS, BATCHES).await, t)
            };
            for (kind, calls) in [(0, CALLS), (1, BATCHES * 32)] {
                let per_call = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(calls);
                let s = &mut samples[kind];
                s[0].push(t[kind].0.as_secs_f64() / p[kind].0.as_secs_f64());
                s[1].push(t[kind].1 / p[kind].1);
                s[2].push(per_call(p[kind].0));
                s[3].push(per_call(t[kind].0));
                s[4].push(p[kind].1 / 1e3 / f64::from(calls));
                s[5].push(t[kind].1 / 1e3 / f64::from(calls));
            }
        }
    });
    for (kind, name) in [(0, "sequential"), (1, "32 in flight")] {
        let [m0, m1, m2, m3, m4, m5] = samples[kind].clone().map(|mut v| {
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0], v[v.len() - 1])
        });
        println!(
            "paired rounds ({ROUNDS}), {name}: wall {:.1} -> {:.1} µs/call, ratio median {:.3} (min {:.3}, max {:.3}); CPU {:.1} -> {:.1} µs/call, ratio median {:.3} (min {:.3}, max {:.3})",
            m2.0, m3.0, m0.0, m0.1, m0.2, m4.0, m5.0, m1.0, m1.1, m1.2
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = tls
}
criterion_main!(benches);
