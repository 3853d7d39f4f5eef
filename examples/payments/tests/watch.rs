//! `WatchPayments` over real sockets against the `payments` binary: in the store's sequence,
//! each payment once, resumable, bounded.
//!
//! - Two replicas whose clocks are ten minutes apart share PostgreSQL and a NATS server of
//!   the test's own, which is killed and restarted in the middle: a watcher on either
//!   replica receives every payment of both, exactly once, in sequence order.
//! - A watcher that disconnects and resumes with `after_sequence` receives what it missed,
//!   in order, then the new ones.
//! - A watcher whose client stops reading falls behind the replica's history and is ended
//!   with RESOURCE_EXHAUSTED (`WATCHER_TOO_SLOW`, the sequence to resume after); it resumes
//!   from the table.
//! - `MAX_WATCHERS_PER_USER` and `MAX_WATCHERS` refuse with RESOURCE_EXHAUSTED; a watch that
//!   ends gives its place back, and so does one whose peer vanished (HTTP/2 keepalive).
//! - Shutting down ends every watch with UNAVAILABLE (`SHUTTING_DOWN`) at once.
//! - 1,000 concurrent watchers on one replica, with the server's memory reported.

mod common;

use common::PaymentsProcess;
use futures_util::StreamExt;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{CreatePaymentRequest, Payment, WatchPaymentsRequest};
use payments_example::token::{authorize, mint};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status, Streaming};
use tonic_blueprint_testkit::{OwnNats, free_port};
use tonic_types::StatusExt;

/// The secret the servers of these tests verify tokens with.
const SECRET: &str = "payments-watch-test-secret";
const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
/// How long a payment may take to reach a watcher (the tail polls every second).
const DELIVERY: Duration = Duration::from_secs(20);

type Client = PaymentServiceClient<Channel>;

fn token(user: &str) -> String {
    mint(SECRET, user, Duration::from_secs(3600)).expect("mint a token")
}

fn authed<T>(message: T, user: &str) -> Request<T> {
    let mut request = Request::new(message);
    authorize(&mut request, &token(user));
    request
}

async fn connect(uri: &str) -> Client {
    PaymentServiceClient::connect(uri.to_owned())
        .await
        .expect("connect")
}

async fn create(client: &mut Client, user: &str, cents: i64) -> Payment {
    let mut request = authed(
        CreatePaymentRequest {
            user_id: user.to_owned(),
            amount_cents: cents,
            currency: "EUR".to_owned(),
            description: format!("watched {cents}"),
        },
        user,
    );
    request.set_timeout(Duration::from_secs(20));
    client
        .create_payment(request)
        .await
        .expect("create")
        .into_inner()
}

/// A watch without a deadline.
async fn watch(
    client: &mut Client,
    user: &str,
    after_sequence: Option<u64>,
) -> Result<Streaming<Payment>, Status> {
    client
        .watch_payments(authed(
            WatchPaymentsRequest {
                user_id: user.to_owned(),
                after_sequence,
            },
            user,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The watch's next payment; fails the test if the watch ends or nothing comes in time.
async fn next(stream: &mut Streaming<Payment>, what: &str) -> Payment {
    match tokio::time::timeout(DELIVERY, stream.next()).await {
        Ok(Some(Ok(payment))) => payment,
        Ok(Some(Err(status))) => panic!("{what}: the watch ended: {status:?}"),
        Ok(None) => panic!("{what}: the watch ended"),
        Err(_) => panic!("{what}: nothing within {DELIVERY:?}"),
    }
}

/// `n` payments from the watch.
async fn take(stream: &mut Streaming<Payment>, n: usize, what: &str) -> Vec<Payment> {
    let mut got = Vec::with_capacity(n);
    for i in 0..n {
        got.push(next(stream, &format!("{what} #{i}")).await);
    }
    got
}

/// Fails the test if the watch yields anything within `quiet` (a real time limit: what was
/// going to be delivered twice would be by then).
async fn assert_quiet(stream: &mut Streaming<Payment>, quiet: Duration, what: &str) {
    if let Ok(item) = tokio::time::timeout(quiet, stream.next()).await {
        panic!("{what}: expected nothing more, got {item:?}");
    }
}

/// The status that ended the watch (its next item within [`DELIVERY`]).
async fn ending(stream: &mut Streaming<Payment>, what: &str) -> Status {
    loop {
        match tokio::time::timeout(DELIVERY, stream.next()).await {
            Ok(Some(Err(status))) => return status,
            Ok(Some(Ok(_))) => continue,
            Ok(None) => panic!("{what}: the watch ended with OK"),
            Err(_) => panic!("{what}: the watch did not end within {DELIVERY:?}"),
        }
    }
}

/// The `ErrorInfo` of a status: its reason and its `after_sequence`, if any.
fn error_info(status: &Status) -> (String, Option<u64>) {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("an ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "payments.v1");
    let after = info
        .metadata
        .get("after_sequence")
        .map(|s| s.parse().expect("a sequence"));
    (info.reason, after)
}

fn ids(payments: &[Payment]) -> Vec<&str> {
    payments.iter().map(|p| p.id.as_str()).collect()
}

fn assert_in_sequence_order(payments: &[Payment], what: &str) {
    for pair in payments.windows(2) {
        assert!(
            pair[0].sequence < pair[1].sequence,
            "{what}: {} then {}",
            pair[0].sequence,
            pair[1].sequence
        );
    }
}

fn sqlite_server(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> PaymentsProcess {
    let mut env = vec![
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("payments.db").display()),
        ),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
        ("REDIS_URL", String::new()),
        ("NATS_URL", String::new()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    PaymentsProcess::start(&env)
}

/// A database of the test's own on the local PostgreSQL, dropped first if a previous run
/// left it.
async fn own_postgres(name: &str) -> String {
    let admin = sqlx::PgPool::connect(POSTGRES_ADMIN)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test.sh starts it)");
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(&statement)
            .execute(&admin)
            .await
            .expect(&statement);
    }
    admin.close().await;
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

async fn drop_postgres(name: &str) {
    let admin = sqlx::PgPool::connect(POSTGRES_ADMIN)
        .await
        .expect("connect");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .expect("drop the test's database");
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_skewed_clocks_and_a_nats_restart_deliver_each_payment_once() {
    let db_name = format!("payments_watch_{}", std::process::id());
    let database_url = own_postgres(&db_name).await;
    let nats_dir = tempfile::tempdir().expect("dir");
    let mut nats = OwnNats::start(free_port(), nats_dir.path());
    let replica = |skew_ms: &str| {
        PaymentsProcess::start(&[
            ("DATABASE_URL", database_url.clone()),
            ("AUTH_JWT_SECRET", SECRET.to_owned()),
            ("REDIS_URL", String::new()),
            ("NATS_URL", nats.url()),
            // The injected skew: A's clock five minutes ahead, B's five minutes behind.
            ("PAYMENTS_CLOCK_SKEW_MS", skew_ms.to_owned()),
        ])
    };
    let a = replica("300000");
    let b = replica("-300000");
    let (mut on_a, mut on_b) = (connect(&a.uri).await, connect(&b.uri).await);

    let user = "skewed";
    let mut watch_a = watch(&mut on_a, user, None).await.expect("watch on A");
    let mut watch_b = watch(&mut on_b, user, None).await.expect("watch on B");
    let mut other_b = watch(&mut on_b, "bystander", None)
        .await
        .expect("another user's watch");

    // Four payments alternately on A and B, four while NATS is down, four after it is back.
    let mut created = Vec::new();
    let mut cents = 100;
    for phase in ["NATS up", "NATS down", "NATS back"] {
        match phase {
            "NATS down" => nats.kill(),
            "NATS back" => nats.restart(),
            _ => {}
        }
        for _ in 0..2 {
            cents += 1;
            created.push(create(&mut on_a, user, cents).await);
            cents += 1;
            created.push(create(&mut on_b, user, cents).await);
        }
    }
    let bystanders = create(&mut on_a, "bystander", 1).await;

    // The skew is real: B's ids and times are ten minutes behind A's, so the id order is
    // not the creation order; the sequence is.
    assert_in_sequence_order(&created, "created");
    let (first_a, first_b) = (&created[0], &created[1]);
    assert!(
        first_b.id < first_a.id,
        "B's later payment sorts first by id"
    );
    let seconds = |p: &Payment| p.created_at.as_ref().map_or(0, |t| t.seconds);
    let apart = seconds(first_a) - seconds(first_b);
    assert!((590..=610).contains(&apart), "clocks {apart} s apart");

    for (name, stream) in [("A", &mut watch_a), ("B", &mut watch_b)] {
        let got = take(stream, created.len(), &format!("watcher on {name}")).await;
        assert_eq!(ids(&got), ids(&created), "watcher on {name}");
        assert_in_sequence_order(&got, name);
    }
    let got = next(&mut other_b, "the bystander's watch").await;
    assert_eq!(got.id, bystanders.id);
    // Exactly once: the outbox relay publishes again what NATS missed and both tails poll;
    // nothing is delivered twice.
    for (name, stream) in [
        ("A", &mut watch_a),
        ("B", &mut watch_b),
        ("bystander", &mut other_b),
    ] {
        assert_quiet(stream, Duration::from_secs(4), name).await;
    }

    // A watcher that resumes on the other replica from the start gets them all again, once.
    let mut resumed = watch(&mut on_b, user, Some(0)).await.expect("resume on B");
    let got = take(&mut resumed, created.len(), "resumed on B").await;
    assert_eq!(ids(&got), ids(&created));
    assert_quiet(&mut resumed, Duration::from_secs(2), "resumed on B").await;

    drop((watch_a, watch_b, other_b, resumed));
    assert!(a.stop().success(), "A exits gracefully");
    assert!(b.stop().success(), "B exits gracefully");
    drop(nats);
    drop_postgres(&db_name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_disconnects_and_resumes_receives_what_it_missed() {
    let dir = tempfile::tempdir().expect("dir");
    let server = sqlite_server(&dir, &[]);
    let mut client = connect(&server.uri).await;
    let user = "returning";

    let mut first = watch(&mut client, user, None).await.expect("watch");
    let seen = [
        create(&mut client, user, 1).await,
        create(&mut client, user, 2).await,
    ];
    assert_eq!(ids(&take(&mut first, 2, "first watch").await), ids(&seen));
    drop(first);

    // Missed while away (and another user's, which is never this watch's).
    let missed = [
        create(&mut client, user, 3).await,
        create(&mut client, "someone-else", 4).await,
        create(&mut client, user, 5).await,
        create(&mut client, user, 6).await,
    ];
    let mut resumed = watch(&mut client, user, Some(seen[1].sequence))
        .await
        .expect("resume");
    let got = take(&mut resumed, 3, "resumed").await;
    assert_eq!(ids(&got), [&missed[0].id, &missed[2].id, &missed[3].id]);
    // Then it is live.
    let later = create(&mut client, user, 7).await;
    assert_eq!(next(&mut resumed, "live after resuming").await.id, later.id);
    assert_quiet(&mut resumed, Duration::from_secs(2), "resumed").await;

    // From sequence 0: every payment of the user, in order.
    let mut all = watch(&mut client, user, Some(0)).await.expect("from 0");
    let got = take(&mut all, 6, "from 0").await;
    assert_in_sequence_order(&got, "from 0");
    assert!(got.iter().all(|p| p.user_id == user));
    assert_eq!(got.last().map(|p| &p.id), Some(&later.id));

    // A resume position past everything recorded waits for later payments.
    let mut ahead = watch(&mut client, user, Some(later.sequence + 1000))
        .await
        .expect("ahead");
    assert_quiet(&mut ahead, Duration::from_secs(1), "ahead").await;

    // A resume position beyond i64 is refused by the validation layer.
    let refused = watch(&mut client, user, Some(u64::MAX))
        .await
        .expect_err("out of range");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    drop((resumed, all, ahead));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_is_ended_and_resumes_from_the_table() {
    let dir = tempfile::tempdir().expect("dir");
    let server = sqlite_server(&dir, &[("WATCH_HISTORY", "4")]);
    let user = "slow";
    let mut client = connect(&server.uri).await;
    // A connection whose client grants the server 1 KiB per stream: it stops sending once
    // the unread payments fill it.
    let narrow = Endpoint::from_shared(server.uri.clone())
        .expect("uri")
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .expect("connect");
    let mut narrow = PaymentServiceClient::new(narrow);
    let mut slow = watch(&mut narrow, user, None).await.expect("slow watch");
    let mut fast = watch(&mut client, user, None).await.expect("fast watch");

    let mut created = Vec::new();
    for cents in 1..=30 {
        created.push(create(&mut client, user, cents).await);
    }
    // A watcher that reads keeps up with the history of four, whatever the other does.
    assert_eq!(ids(&take(&mut fast, 30, "fast").await), ids(&created));

    // The slow one got what fitted in its window, then the status.
    let mut got = Vec::new();
    let status = loop {
        match tokio::time::timeout(DELIVERY, slow.next()).await {
            Ok(Some(Ok(payment))) => got.push(payment),
            Ok(Some(Err(status))) => break status,
            other => panic!("the slow watch: {other:?}"),
        }
    };
    eprintln!(
        "the slow watcher received {} of 30 payments, then {:?}: {}",
        got.len(),
        status.code(),
        status.message()
    );
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("after_sequence"), "{status:?}");
    let (reason, after) = error_info(&status);
    assert_eq!(reason, "WATCHER_TOO_SLOW");
    assert!(
        !got.is_empty() && got.len() < 26,
        "{} delivered before it fell behind",
        got.len()
    );
    assert_eq!(ids(&got), ids(&created[..got.len()]));
    let last = got.last().map(|p| p.sequence);
    assert_eq!(after, last, "the status names the last payment delivered");

    // Resuming after it catches up from the table (the history holds four): the rest, once.
    let mut resumed = watch(&mut client, user, after).await.expect("resume");
    let rest = take(&mut resumed, 30 - got.len(), "resumed").await;
    assert_eq!(ids(&rest), ids(&created[got.len()..]));
    assert_quiet(&mut resumed, Duration::from_secs(2), "resumed").await;
    drop((fast, resumed));
    assert!(server.stop().success());
}

/// Retries a watch until it is admitted (a place freed elsewhere), at most `within`.
async fn admitted(client: &mut Client, user: &str, within: Duration) -> Streaming<Payment> {
    let started = Instant::now();
    loop {
        match watch(client, user, None).await {
            Ok(stream) => return stream,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    started.elapsed() < within,
                    "no place freed within {within:?}: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("watch: {status:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_limits_refuse_with_resource_exhausted() {
    let dir = tempfile::tempdir().expect("dir");
    let server = sqlite_server(
        &dir,
        &[("MAX_WATCHERS", "3"), ("MAX_WATCHERS_PER_USER", "2")],
    );
    let mut client = connect(&server.uri).await;
    let ann_1 = watch(&mut client, "ann", None).await.expect("ann 1");
    let ann_2 = watch(&mut client, "ann", None).await.expect("ann 2");
    let refused = watch(&mut client, "ann", None)
        .await
        .expect_err("ann's third");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.message(),
        "too many watches open for this user: close one before opening another"
    );
    assert_eq!(error_info(&refused).0, "TOO_MANY_WATCHERS_PER_USER");
    // A caller speaking Spanish: the same English message, and a LocalizedMessage in Spanish.
    let mut spanish = authed(
        WatchPaymentsRequest {
            user_id: "ann".to_owned(),
            after_sequence: None,
        },
        "ann",
    );
    spanish
        .metadata_mut()
        .insert("grpc-accept-language", "es".parse().expect("ascii"));
    let refused = client
        .watch_payments(spanish)
        .await
        .expect_err("ann's third, in Spanish");
    assert_eq!(
        refused.message(),
        "too many watches open for this user: close one before opening another"
    );
    let localized = refused
        .get_details_localized_message()
        .expect("a LocalizedMessage");
    assert_eq!(localized.locale, "es");
    assert!(
        localized.message.starts_with("demasiadas suscripciones"),
        "{localized:?}"
    );

    let mut ben = watch(&mut client, "ben", None).await.expect("ben");
    let refused = watch(&mut client, "cid", None)
        .await
        .expect_err("the fourth on the replica");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(error_info(&refused).0, "TOO_MANY_WATCHERS");

    // Refused calls took no place, and the admitted watches work.
    let payment = create(&mut client, "ben", 5).await;
    assert_eq!(next(&mut ben, "ben").await.id, payment.id);

    // A watch that ends gives its place back (to anyone).
    drop(ann_1);
    let cid = admitted(&mut client, "cid", Duration::from_secs(10)).await;
    drop((ann_2, cid, ben));
    assert!(server.stop().success());
}

/// A TCP proxy to `target` that can freeze: it stops forwarding either way without closing
/// anything, as a peer that vanished from the network would.
async fn freezable_proxy(target: String) -> (String, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let frozen = Arc::new(AtomicBool::new(false));
    let flag = frozen.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            tokio::spawn(pump(in_read, out_write, flag.clone()));
            tokio::spawn(pump(out_read, in_write, flag.clone()));
        }
    });
    (format!("http://{addr}"), frozen)
}

/// Copies `from` to `to` until either closes; once `frozen`, holds both open and copies
/// nothing more.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 {
            return;
        }
        if frozen.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_frees_the_place_of_a_watcher_whose_peer_vanished() {
    let dir = tempfile::tempdir().expect("dir");
    let server = sqlite_server(
        &dir,
        &[
            ("MAX_WATCHERS_PER_USER", "1"),
            ("KEEPALIVE_INTERVAL_SECONDS", "1"),
            ("KEEPALIVE_TIMEOUT_SECONDS", "1"),
        ],
    );
    let target = server.uri.trim_start_matches("http://").to_owned();
    let (proxied, frozen) = freezable_proxy(target).await;
    let mut through_proxy = connect(&proxied).await;
    let mut direct = connect(&server.uri).await;
    let user = "vanishing";
    let _vanished = watch(&mut through_proxy, user, None)
        .await
        .expect("the watch through the proxy");
    let refused = watch(&mut direct, user, None)
        .await
        .expect_err("one watch per user");
    assert_eq!(refused.code(), Code::ResourceExhausted);

    // The peer vanishes: nothing comes back, nothing is closed.
    frozen.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let mut again = admitted(&mut direct, user, Duration::from_secs(15)).await;
    let freed_after = started.elapsed();
    eprintln!("the dead peer's place was freed after {freed_after:?}");
    assert!(freed_after >= Duration::from_millis(900), "{freed_after:?}");
    let payment = create(&mut direct, user, 9).await;
    assert_eq!(next(&mut again, "the new watch").await.id, payment.id);
    drop(again);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_ends_every_watch_with_unavailable_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    // A grace period far longer than the test allows for the stop: only ending the watches
    // first makes the stop quick.
    let server = sqlite_server(&dir, &[("SHUTDOWN_GRACE_SECONDS", "60")]);
    let mut client = connect(&server.uri).await;
    let mut watching = watch(&mut client, "leaving", None).await.expect("watch");
    let payment = create(&mut client, "leaving", 1).await;
    assert_eq!(next(&mut watching, "before the stop").await.id, payment.id);
    let started = Instant::now();
    let stopping = tokio::task::spawn_blocking(move || server.stop());
    let status = ending(&mut watching, "the watch at shutdown").await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        error_info(&status),
        ("SHUTTING_DOWN".to_owned(), Some(payment.sequence))
    );
    assert!(stopping.await.expect("stop").success(), "graceful exit");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "the stop took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_watchers_on_one_replica_with_bounded_memory() {
    const USERS: usize = 100;
    const PER_USER: usize = 10;
    const CONNECTIONS: usize = 10;
    let dir = tempfile::tempdir().expect("dir");
    let server = sqlite_server(
        &dir,
        &[
            ("MAX_WATCHERS", "1000"),
            ("MAX_WATCHERS_PER_USER", "10"),
            ("LOG_LEVEL", "error"),
        ],
    );
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        // One HTTP/2 connection each (100 streams each, below MAX_CONCURRENT_STREAMS).
        let channel = Endpoint::from_shared(server.uri.clone())
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        clients.push(PaymentServiceClient::new(channel));
    }
    let user = |i: usize| format!("crowd-{i:03}");
    // Warm up: a watch, a payment and its delivery, so lazy start-up costs are paid.
    {
        let mut warm = watch(&mut clients[0], "warm-up", None).await.expect("warm");
        let payment = create(&mut clients[0], "warm-up", 1).await;
        assert_eq!(next(&mut warm, "warm-up").await.id, payment.id);
    }
    let before = server.rss_kib();

    let opened = Instant::now();
    let mut opening = Vec::new();
    for i in 0..USERS * PER_USER {
        let mut client = clients[i % CONNECTIONS].clone();
        let user = user(i % USERS);
        opening.push(tokio::spawn(async move {
            let stream = watch(&mut client, &user, None).await;
            (user, stream)
        }));
    }
    let mut watchers = Vec::new();
    for task in opening {
        let (user, stream) = task.await.expect("task");
        watchers.push((user, stream.expect("a watch within the limits")));
    }
    let opened = opened.elapsed();
    let refused = watch(&mut clients[0], "one-too-many", None)
        .await
        .expect_err("the 1,001st");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(error_info(&refused).0, "TOO_MANY_WATCHERS");
    let open = server.rss_kib();

    // One payment per user: each of the 1,000 watchers receives its user's, and only it.
    let mut readers = Vec::new();
    for (user, mut stream) in watchers {
        readers.push(tokio::spawn(async move {
            let payment = next(&mut stream, &user).await;
            assert_eq!(payment.user_id, user);
            (payment.id, stream)
        }));
    }
    let fanned = Instant::now();
    let mut created = HashSet::new();
    for i in 0..USERS {
        created.insert(create(&mut clients[i % CONNECTIONS], &user(i), 1).await.id);
    }
    let mut streams = Vec::new();
    for reader in readers {
        let (id, stream) = reader.await.expect("every watcher got its payment");
        assert!(created.contains(&id));
        streams.push(stream);
    }
    let fanned = fanned.elapsed();
    let after_fan_out = server.rss_kib();

    drop(streams);
    // Every place is given back: a user's full ten watches open again.
    let mut again = Vec::new();
    for _ in 0..PER_USER {
        again.push(admitted(&mut clients[1], &user(0), Duration::from_secs(10)).await);
    }
    drop(again);
    let closed = server.rss_kib();

    let per_watcher = (open.saturating_sub(before)) * 1024 / 1000;
    eprintln!(
        "1,000 watchers on one replica: server RSS {} KiB before, {} KiB with 1,000 watches open \
         (+{} KiB, {} bytes per watcher), {} KiB after 100 payments fanned out, {} KiB after \
         they closed; opened in {opened:?}, fanned out in {fanned:?}",
        before,
        open,
        open.saturating_sub(before),
        per_watcher,
        after_fan_out,
        closed
    );
    // Bounded: well under 64 KiB per watcher, and the fan-out holds no per-watcher copies.
    assert!(per_watcher < 64 * 1024, "{per_watcher} bytes per watcher");
    assert!(
        after_fan_out.saturating_sub(open) < 16 * 1024,
        "the fan-out grew the server by {} KiB",
        after_fan_out.saturating_sub(open)
    );
    assert!(server.stop().success());
}
