//! Who may call what, and idempotent creates, over real sockets against the `payments`
//! binary.
//!
//! - Every call needs a valid bearer JWT: none, an expired one, one signed with another
//!   secret or one that is no JWT at all is UNAUTHENTICATED; health checks are public and
//!   never rate-limited.
//! - A user sees only their own payments: another user's `GetPayment` is NOT_FOUND with the
//!   very message of a missing id; listing, watching or paying for another user is
//!   PERMISSION_DENIED.
//! - `CreatePayment` with an `idempotency-key` stores one row per user and key, on SQLite and
//!   on PostgreSQL (counted with sqlx directly), for sequential and concurrent retries; the
//!   same key with another request is ALREADY_EXISTS; a malformed key is INVALID_ARGUMENT;
//!   a retry neither drops the user's cached pages nor announces the payment again.

mod common;

use common::PaymentsProcess;
use futures_util::StreamExt;
use payments_example::metadata_text;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{
    CreatePaymentRequest, GetPaymentRequest, ListPaymentsRequest, Payment, WatchPaymentsRequest,
};
use payments_example::service::IDEMPOTENCY_KEY;
use payments_example::token::{Claims, authorize, mint, mint_claims};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_blueprint_testkit::OwnNats;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

/// The secret the servers of these tests verify tokens with.
const SECRET: &str = "payments-auth-test-secret";
const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

type Client = PaymentServiceClient<Channel>;

fn token(user: &str) -> String {
    mint(SECRET, user, Duration::from_secs(3600)).expect("mint a token")
}

/// `message` with `authorization: Bearer <token>` when a token is given.
fn authed<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        authorize(&mut request, token);
    }
    request.set_timeout(Duration::from_secs(20));
    request
}

fn payment_request(user: &str, cents: i64, description: &str) -> CreatePaymentRequest {
    CreatePaymentRequest {
        user_id: user.to_owned(),
        amount_cents: cents,
        currency: "EUR".to_owned(),
        description: description.to_owned(),
    }
}

/// A `CreatePayment` by `caller` with `key` as its `idempotency-key` (raw bytes, to send
/// malformed ones too).
fn create(
    caller: &str,
    message: CreatePaymentRequest,
    key: Option<&[u8]>,
) -> Request<CreatePaymentRequest> {
    let mut request = authed(message, Some(&token(caller)));
    if let Some(key) = key {
        request.metadata_mut().insert(
            IDEMPOTENCY_KEY,
            MetadataValue::try_from(key).expect("bytes tonic can send"),
        );
    }
    request
}

fn list(caller: &str, user: &str) -> Request<ListPaymentsRequest> {
    authed(
        ListPaymentsRequest {
            user_id: user.to_owned(),
            page_size: 100,
            page_token: String::new(),
        },
        Some(&token(caller)),
    )
}

fn get(caller: &str, id: &str) -> Request<GetPaymentRequest> {
    authed(
        GetPaymentRequest { id: id.to_owned() },
        Some(&token(caller)),
    )
}

fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, what: &str) -> Status {
    match result {
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            status
        }
        Ok(ok) => panic!("{what}: expected {code:?}, got OK: {ok:?}"),
    }
}

fn sqlite_server(dir: &tempfile::TempDir, extra: &[(&str, String)]) -> (PaymentsProcess, String) {
    let url = format!("sqlite://{}", dir.path().join("payments.db").display());
    let mut env = vec![
        ("DATABASE_URL", url.clone()),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
        ("REDIS_URL", String::new()),
        ("NATS_URL", String::new()),
    ];
    env.extend(extra.iter().cloned());
    (PaymentsProcess::start(&env), url)
}

async fn connect(server: &PaymentsProcess) -> Client {
    PaymentServiceClient::connect(server.uri.clone())
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status() {
    let dir = tempfile::tempdir().expect("dir");
    let (server, _) = sqlite_server(&dir, &[]);
    let mut client = connect(&server).await;

    // No token, an expired one, one signed with another secret, and one that is no JWT: each
    // method is UNAUTHENTICATED.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let expired = mint_claims(
        SECRET,
        &Claims {
            sub: "alice",
            exp: now - 3600,
        },
    )
    .expect("mint");
    let other_secret = mint("another-secret", "alice", Duration::from_secs(3600)).expect("mint");
    for (what, token) in [
        ("no token", None),
        ("an expired token", Some(expired.as_str())),
        (
            "a token signed with another secret",
            Some(other_secret.as_str()),
        ),
        ("a token that is no JWT", Some("not-a-jwt")),
    ] {
        let result = client
            .create_payment(authed(payment_request("alice", 100, "x"), token))
            .await;
        expect_code(
            result,
            Code::Unauthenticated,
            &format!("CreatePayment with {what}"),
        );
        let result = client
            .get_payment(authed(
                GetPaymentRequest {
                    id: uuid::Uuid::now_v7().to_string(),
                },
                token,
            ))
            .await;
        expect_code(
            result,
            Code::Unauthenticated,
            &format!("GetPayment with {what}"),
        );
        let result = client
            .list_payments(authed(
                ListPaymentsRequest {
                    user_id: "alice".to_owned(),
                    ..Default::default()
                },
                token,
            ))
            .await;
        expect_code(
            result,
            Code::Unauthenticated,
            &format!("ListPayments with {what}"),
        );
        let result = client
            .watch_payments(authed(
                WatchPaymentsRequest {
                    user_id: "alice".to_owned(),
                    after_sequence: None,
                },
                token,
            ))
            .await;
        expect_code(
            result,
            Code::Unauthenticated,
            &format!("WatchPayments with {what}"),
        );
    }

    // Alice's payment, read twice by her (the second from the cache).
    let payment = client
        .create_payment(create(
            "alice",
            payment_request("alice", 1250, "coffee"),
            None,
        ))
        .await
        .expect("alice pays")
        .into_inner();
    for expected in ["miss", "hit"] {
        let got = client
            .get_payment(get("alice", &payment.id))
            .await
            .expect("alice reads her payment");
        assert_eq!(got.get_ref(), &payment);
        assert_eq!(metadata_text(&got, "x-cache"), expected);
    }

    // Bob cannot tell her payment from a missing one, cache or no cache.
    let missing = expect_code(
        client
            .get_payment(get("bob", &uuid::Uuid::now_v7().to_string()))
            .await,
        Code::NotFound,
        "a missing payment",
    );
    for _ in 0..2 {
        let others = expect_code(
            client.get_payment(get("bob", &payment.id)).await,
            Code::NotFound,
            "GetPayment of another user's payment",
        );
        assert_eq!(others.message(), missing.message());
        assert_eq!(others.details(), missing.details());
    }

    // Listing, watching or paying for another user: PERMISSION_DENIED, in English, and in a
    // LocalizedMessage detail in the caller's language.
    let denied = expect_code(
        client.list_payments(list("bob", "alice")).await,
        Code::PermissionDenied,
        "ListPayments of another user",
    );
    assert_eq!(denied.message(), "permission denied");
    assert!(denied.get_details_localized_message().is_none());
    let mut spanish = list("bob", "alice");
    spanish
        .metadata_mut()
        .insert("grpc-accept-language", "es".parse().expect("ascii"));
    let denied = expect_code(
        client.list_payments(spanish).await,
        Code::PermissionDenied,
        "ListPayments of another user, in Spanish",
    );
    assert_eq!(denied.message(), "permission denied");
    let localized = denied
        .get_details_localized_message()
        .expect("LocalizedMessage");
    assert_eq!(
        (localized.locale.as_str(), localized.message.as_str()),
        ("es", "permiso denegado")
    );
    expect_code(
        client
            .watch_payments(authed(
                WatchPaymentsRequest {
                    user_id: "alice".to_owned(),
                    after_sequence: None,
                },
                Some(&token("bob")),
            ))
            .await,
        Code::PermissionDenied,
        "WatchPayments of another user",
    );
    expect_code(
        client
            .create_payment(create(
                "bob",
                payment_request("alice", 999, "on alice"),
                None,
            ))
            .await,
        Code::PermissionDenied,
        "CreatePayment for another user",
    );
    expect_code(
        client
            .create_payment(create(
                "bob",
                payment_request("alice", 999, "on alice"),
                Some(b"bob-key-1"),
            ))
            .await,
        Code::PermissionDenied,
        "CreatePayment for another user, with an idempotency key",
    );
    let alices = client
        .list_payments(list("alice", "alice"))
        .await
        .expect("alice lists")
        .into_inner();
    assert_eq!(
        alices.payments,
        vec![payment],
        "bob's attempts left alice with her one payment"
    );

    assert!(server.stop().success(), "graceful exit");
}

/// The server's output up to its `listening on` line (then it is killed), or all of it when
/// it exits before; and whether it got that far.
fn startup_output(env: &[(&str, &str)]) -> (Vec<String>, bool) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_payments"));
    command
        .env_remove("AUTH_JWT_SECRET")
        .env_remove("AUTH_JWKS_URL")
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "off")
        .env("LOG_LEVEL", "warn")
        .env("LOG_FORMAT", "json")
        .env("REDIS_URL", "")
        .env("NATS_URL", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the payments binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut listening = false;
    // Ends at the `listening on` line or when the server exits (EOF).
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        listening = line.starts_with("listening on ");
        lines.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    lines.extend(
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .map(str::to_owned),
    );
    (lines, listening)
}

#[test]
fn the_development_secret_is_the_default_and_warned_about() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("payments.db").display());
    let warned = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("development secret"))
    };

    let (lines, listening) = startup_output(&[("DATABASE_URL", &db)]);
    assert!(listening, "the server starts on its defaults: {lines:#?}");
    assert!(warned(&lines), "a warning about dev-secret: {lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("development secret"))
            .count(),
        1,
        "one line: {lines:#?}"
    );

    let (lines, listening) = startup_output(&[("DATABASE_URL", &db), ("AUTH_JWT_SECRET", SECRET)]);
    assert!(listening, "{lines:#?}");
    assert!(
        !warned(&lines),
        "no warning with a secret of its own: {lines:#?}"
    );

    // No way to verify anyone: the service refuses to start rather than refuse every call.
    let (lines, listening) = startup_output(&[("DATABASE_URL", &db), ("AUTH_JWT_SECRET", "")]);
    assert!(!listening, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("AUTH_JWT_SECRET or AUTH_JWKS_URL")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_public_and_never_rate_limited() {
    let dir = tempfile::tempdir().expect("dir");
    let (server, _) = sqlite_server(&dir, &[("RATE_LIMIT_PER_MINUTE", "5".to_owned())]);
    let channel = Channel::from_shared(server.uri.clone())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel.clone());
    for i in 0..20 {
        let service = if i % 2 == 0 {
            ""
        } else {
            "payments.v1.PaymentService"
        };
        // Without a token: probes carry none.
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap_or_else(|status| panic!("health check {i} ({service:?}): {status:?}"));
        assert_eq!(
            response.into_inner().status(),
            ServingStatus::Serving,
            "health check {i}"
        );
    }
    // The quota itself holds for the service's methods: the sixth list in a minute is refused.
    let mut client = PaymentServiceClient::new(channel);
    for _ in 0..5 {
        client
            .list_payments(list("carol", "carol"))
            .await
            .expect("within the quota");
    }
    expect_code(
        client.list_payments(list("carol", "carol")).await,
        Code::ResourceExhausted,
        "the sixth ListPayments in a minute",
    );
    assert!(server.stop().success(), "graceful exit");
}

/// Counts a user's rows holding an idempotency key, with sqlx directly.
enum Rows {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Rows {
    async fn with_key(&self, user: &str, key: &str) -> i64 {
        let sql = "SELECT COUNT(*) FROM pay_payment WHERE user_id = $1 AND idempotency_key = $2";
        match self {
            Rows::Sqlite(pool) => sqlx::query_scalar(sql)
                .bind(user)
                .bind(key)
                .fetch_one(pool)
                .await
                .expect("count in SQLite"),
            Rows::Postgres(pool) => sqlx::query_scalar(sql)
                .bind(user)
                .bind(key)
                .fetch_one(pool)
                .await
                .expect("count in PostgreSQL"),
        }
    }

    async fn of_user(&self, user: &str) -> i64 {
        let sql = "SELECT COUNT(*) FROM pay_payment WHERE user_id = $1";
        match self {
            Rows::Sqlite(pool) => sqlx::query_scalar(sql)
                .bind(user)
                .fetch_one(pool)
                .await
                .expect("count in SQLite"),
            Rows::Postgres(pool) => sqlx::query_scalar(sql)
                .bind(user)
                .fetch_one(pool)
                .await
                .expect("count in PostgreSQL"),
        }
    }
}

/// What idempotency promises, against the server behind `client`, whose rows `rows` counts.
async fn idempotency_holds(client: &Client, rows: &Rows) {
    let mut client = client.clone();
    let user = "dora";
    let coffee = payment_request(user, 1250, "coffee");

    // A retry returns the first payment and stores nothing.
    let first = client
        .create_payment(create(user, coffee.clone(), Some(b"order-1")))
        .await
        .expect("create")
        .into_inner();
    // The user's page, cached.
    for expected in ["miss", "hit"] {
        let page = client.list_payments(list(user, user)).await.expect("list");
        assert_eq!(metadata_text(&page, "x-cache"), expected);
    }
    for _ in 0..2 {
        let again = client
            .create_payment(create(user, coffee.clone(), Some(b"order-1")))
            .await
            .expect("a retry succeeds")
            .into_inner();
        assert_eq!(again, first, "a retry returns the first payment");
    }
    assert_eq!(
        rows.with_key(user, "order-1").await,
        1,
        "one row for the key"
    );
    // The retries dropped no cached page.
    let page = client.list_payments(list(user, user)).await.expect("list");
    assert_eq!(
        metadata_text(&page, "x-cache"),
        "hit",
        "a retry dropped the cached page"
    );
    assert_eq!(page.into_inner().payments, vec![first.clone()]);

    // The same key with another request (amount, currency or description) is refused.
    let mut others = [coffee.clone(), coffee.clone(), coffee.clone()];
    others[0].amount_cents = 1251;
    others[1].currency = "USD".to_owned();
    others[2].description = "tea".to_owned();
    for other in others {
        let refused = expect_code(
            client
                .create_payment(create(user, other.clone(), Some(b"order-1")))
                .await,
            Code::AlreadyExists,
            &format!("the key of another request: {other:?}"),
        );
        assert!(
            refused.message().contains("idempotency-key"),
            "{}",
            refused.message()
        );
    }
    assert_eq!(rows.with_key(user, "order-1").await, 1);

    // Keys are per user: another user's same key is another payment.
    let erins = client
        .create_payment(create(
            "erin",
            payment_request("erin", 1250, "coffee"),
            Some(b"order-1"),
        ))
        .await
        .expect("erin's create")
        .into_inner();
    assert_ne!(erins.id, first.id);
    assert_eq!(rows.with_key("erin", "order-1").await, 1);

    // Without a key, every call is a payment of its own.
    for _ in 0..2 {
        client
            .create_payment(create("fay", payment_request("fay", 5, "no key"), None))
            .await
            .expect("create without a key");
    }
    assert_eq!(rows.of_user("fay").await, 2);

    // Ten concurrent creates with one key: one row, one payment for all.
    let calls = (0..10).map(|_| {
        let mut client = client.clone();
        let request = create(
            user,
            payment_request(user, 700, "concurrent"),
            Some(b"order-2"),
        );
        tokio::spawn(async move { client.create_payment(request).await })
    });
    let answers: Vec<Payment> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|joined| {
            joined
                .expect("task")
                .expect("each concurrent create")
                .into_inner()
        })
        .collect();
    assert!(
        answers.iter().all(|p| p == &answers[0]),
        "every concurrent create answers the same payment: {answers:?}"
    );
    assert_eq!(
        rows.with_key(user, "order-2").await,
        1,
        "one row for the key"
    );

    // Concurrent creates with one key but different requests: one payment, the rest refused.
    let calls = (0..6).map(|i| {
        let mut client = client.clone();
        let request = create(
            user,
            payment_request(user, 800 + i, "race"),
            Some(b"order-3"),
        );
        tokio::spawn(async move { client.create_payment(request).await })
    });
    let answers: Vec<_> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.expect("task"))
        .collect();
    let won: Vec<&Payment> = answers
        .iter()
        .filter_map(|a| a.as_ref().ok().map(|r| r.get_ref()))
        .collect();
    assert_eq!(won.len(), 1, "one request wins the key: {answers:?}");
    for answer in &answers {
        if let Err(status) = answer {
            assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        }
    }
    assert_eq!(rows.with_key(user, "order-3").await, 1);

    // Malformed keys: INVALID_ARGUMENT, and nothing stored.
    let before = rows.of_user(user).await;
    let too_long = [b'k'; 129];
    for key in [
        &b""[..],
        b"has space",
        b"caf\xc3\xa9",
        b"\xff",
        &too_long[..],
    ] {
        let refused = expect_code(
            client
                .create_payment(create(user, coffee.clone(), Some(key)))
                .await,
            Code::InvalidArgument,
            &format!("idempotency-key {:?}", String::from_utf8_lossy(key)),
        );
        assert!(
            refused.message().contains("idempotency-key"),
            "{}",
            refused.message()
        );
    }
    let mut twice = create(user, coffee.clone(), Some(b"twice-1"));
    twice
        .metadata_mut()
        .append(IDEMPOTENCY_KEY, "twice-2".parse().expect("ascii"));
    expect_code(
        client.create_payment(twice).await,
        Code::InvalidArgument,
        "two idempotency-key values",
    );
    assert_eq!(
        rows.of_user(user).await,
        before,
        "a refused key stores nothing"
    );

    // The longest key, every printable character: accepted.
    let printable: Vec<u8> = (0x21..=0x7e_u8).collect();
    let mut longest = printable.clone();
    longest.extend_from_slice(&printable[..128 - printable.len()]);
    assert_eq!(longest.len(), 128);
    let made = client
        .create_payment(create(user, coffee.clone(), Some(&longest)))
        .await
        .expect("a 128-character key")
        .into_inner();
    let again = client
        .create_payment(create(user, coffee, Some(&longest)))
        .await
        .expect("its retry")
        .into_inner();
    assert_eq!(made, again);
    assert_eq!(
        rows.with_key(user, std::str::from_utf8(&longest).expect("ascii"))
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_creates_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let (server, url) = sqlite_server(&dir, &[]);
    let client = connect(&server).await;
    let rows = Rows::Sqlite(sqlx::SqlitePool::connect(&url).await.expect("SQLite file"));
    idempotency_holds(&client, &rows).await;
    if let Rows::Sqlite(pool) = rows {
        pool.close().await;
    }
    assert!(server.stop().success(), "graceful exit");
}

/// A database of the test's own on the local PostgreSQL, dropped first if a previous run
/// left it.
async fn own_postgres(name: &str) -> (sqlx::PgPool, String) {
    let admin = sqlx::PgPool::connect(POSTGRES_ADMIN)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test.sh starts it)");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .expect("drop");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create");
    admin.close().await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    (pool, url)
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

/// The next `payments.payment.created` event: its payment id and the request id it carries.
async fn next_event(events: &mut async_nats::Subscriber) -> (String, String) {
    let message = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("an event within 20 s")
        .expect("subscription open");
    let event: serde_json::Value = serde_json::from_slice(&message.payload).expect("JSON");
    let request_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get("x-request-id"))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    (
        event["id"].as_str().unwrap_or_default().to_owned(),
        request_id,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_creates_on_postgres_announce_once() {
    let db_name = format!("payments_idem_{}", std::process::id());
    let (pool, database_url) = own_postgres(&db_name).await;
    let nats_dir = tempfile::tempdir().expect("dir");
    let nats = OwnNats::start(tonic_blueprint_testkit::free_port(), nats_dir.path());
    let listener = async_nats::connect(nats.url()).await.expect("NATS");
    let mut events = listener
        .subscribe("payments.payment.created")
        .await
        .expect("subscribe");
    listener.flush().await.expect("flush");
    let server = PaymentsProcess::start(&[
        ("DATABASE_URL", database_url),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
        ("REDIS_URL", String::new()),
        ("NATS_URL", nats.url()),
    ]);
    let mut client = connect(&server).await;

    // The retry announces nothing: the next event after the first payment's is the second
    // payment's. (The outbox relay may publish the first one again with the first call's
    // request id; an event with the retry's request id would be the retry's announcement.)
    let with_request_id = |mut request: Request<CreatePaymentRequest>, id: &str| {
        request
            .metadata_mut()
            .insert("x-request-id", id.parse().expect("ascii"));
        request
    };
    let first = client
        .create_payment(with_request_id(
            create("gus", payment_request("gus", 100, "first"), Some(b"gus-1")),
            "idem-first",
        ))
        .await
        .expect("create")
        .into_inner();
    let retried = client
        .create_payment(with_request_id(
            create("gus", payment_request("gus", 100, "first"), Some(b"gus-1")),
            "idem-retry",
        ))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retried, first);
    let second = client
        .create_payment(with_request_id(
            create("gus", payment_request("gus", 200, "second"), Some(b"gus-2")),
            "idem-second",
        ))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(
        next_event(&mut events).await,
        (first.id.clone(), "idem-first".to_owned())
    );
    loop {
        let (id, request_id) = next_event(&mut events).await;
        assert_ne!(
            request_id, "idem-retry",
            "the retry announced the payment again"
        );
        if id == second.id {
            break;
        }
        assert_eq!(id, first.id, "only the outbox may repeat the first event");
    }

    let rows = Rows::Postgres(pool);
    idempotency_holds(&client, &rows).await;
    if let Rows::Postgres(pool) = rows {
        pool.close().await;
    }
    assert!(server.stop().success(), "graceful exit");
    drop(nats);
    drop_postgres(&db_name).await;
}
