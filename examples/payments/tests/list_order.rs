//! `ListPayments` pages in the store's sequence, not by id: two replicas of the `payments`
//! binary share one database while one's clock is five minutes behind
//! (`PAYMENTS_CLOCK_SKEW_MS`), so its UUID v7 ids sort before payments created earlier on
//! the other; every page, on either replica, still lists newest first in creation order.
//! Against a SQLite file both processes open and against PostgreSQL.

mod common;

use common::PaymentsProcess;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{CreatePaymentRequest, ListPaymentsRequest, Payment};
use payments_example::token::{authorize, mint};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Request};

/// The secret the servers of these tests verify tokens with.
const SECRET: &str = "payments-list-order-test-secret";
const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Replica B's clock, behind A's.
const B_BEHIND_MS: &str = "-300000";

type Client = PaymentServiceClient<Channel>;

fn authed<T>(message: T, user: &str) -> Request<T> {
    let mut request = Request::new(message);
    let token = mint(SECRET, user, Duration::from_secs(3600)).expect("mint a token");
    authorize(&mut request, &token);
    request.set_timeout(Duration::from_secs(20));
    request
}

async fn connect(uri: &str) -> Client {
    PaymentServiceClient::connect(uri.to_owned())
        .await
        .expect("connect")
}

async fn create(client: &mut Client, user: &str, cents: i64) -> Payment {
    let request = authed(
        CreatePaymentRequest {
            user_id: user.to_owned(),
            amount_cents: cents,
            currency: "EUR".to_owned(),
            description: format!("listed {cents}"),
        },
        user,
    );
    client
        .create_payment(request)
        .await
        .expect("create")
        .into_inner()
}

/// Every page of the user's payments, `page_size` at a time, following the tokens.
async fn every_page(client: &mut Client, user: &str, page_size: i32) -> Vec<Vec<Payment>> {
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_payments(authed(
                ListPaymentsRequest {
                    user_id: user.to_owned(),
                    page_size,
                    page_token: page_token.clone(),
                },
                user,
            ))
            .await
            .unwrap_or_else(|status| panic!("page {}: {status:?}", pages.len()))
            .into_inner();
        pages.push(page.payments);
        if page.next_page_token.is_empty() {
            return pages;
        }
        assert!(pages.len() <= 10, "the pages do not end");
        page_token = page.next_page_token;
    }
}

fn ids(payments: &[Payment]) -> Vec<&str> {
    payments.iter().map(|p| p.id.as_str()).collect()
}

/// Two replicas on `database_url`, B's clock behind A's: payments created alternately on
/// each list newest first in creation order, a page at a time, on both.
async fn pages_follow_creation_order(database_url: String) {
    let replica = |skew_ms: &str| {
        PaymentsProcess::start(&[
            ("DATABASE_URL", database_url.clone()),
            ("AUTH_JWT_SECRET", SECRET.to_owned()),
            ("REDIS_URL", String::new()),
            ("NATS_URL", String::new()),
            ("PAYMENTS_CLOCK_SKEW_MS", skew_ms.to_owned()),
        ])
    };
    // One after the other: A applies the migrations before B starts.
    let a = replica("0");
    let b = replica(B_BEHIND_MS);
    let (mut on_a, mut on_b) = (connect(&a.uri).await, connect(&b.uri).await);

    let user = "lister";
    let mut created = Vec::new();
    for cents in 1..=3 {
        created.push(create(&mut on_a, user, cents * 10).await);
        created.push(create(&mut on_b, user, cents * 10 + 1).await);
    }
    // The skew is real: B's later payment sorts before A's earlier one by id.
    assert!(
        created[1].id < created[0].id,
        "B's clock is behind: {} then {}",
        created[0].id,
        created[1].id
    );
    let newest_first: Vec<&str> = ids(&created).into_iter().rev().collect();

    for (name, client) in [("A", &mut on_a), ("B", &mut on_b)] {
        let pages = every_page(client, user, 4).await;
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [4, 2],
            "on {name}"
        );
        let listed: Vec<Payment> = pages.into_iter().flatten().collect();
        assert_eq!(ids(&listed), newest_first, "on {name}: newest first");
        assert!(
            listed.windows(2).all(|w| w[0].sequence > w[1].sequence),
            "on {name}: in sequence order"
        );
        // One payment a page: the tokens walk the same order.
        let one_by_one: Vec<Payment> = every_page(client, user, 1)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(ids(&one_by_one), newest_first, "on {name}: a page of one");
    }

    // A token that is not one the service made is refused.
    for token in ["not-a-token", "0", &created[0].id] {
        let refused = on_a
            .list_payments(authed(
                ListPaymentsRequest {
                    user_id: user.to_owned(),
                    page_size: 2,
                    page_token: (*token).to_owned(),
                },
                user,
            ))
            .await
            .expect_err("a foreign token");
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{token:?}: {refused:?}"
        );
        assert!(refused.message().contains("page_token"), "{refused:?}");
    }

    assert!(a.stop().success(), "A exits gracefully");
    assert!(b.stop().success(), "B exits gracefully");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pages_follow_creation_order_whatever_the_replica_clocks() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("payments.db").display());
    pages_follow_creation_order(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pages_follow_creation_order_whatever_the_replica_clocks() {
    let name = format!("payments_list_order_{}", std::process::id());
    let admin = sqlx::PgPool::connect(POSTGRES_ADMIN)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test.sh starts it)");
    let statements = [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ];
    for statement in &statements {
        sqlx::query(statement)
            .execute(&admin)
            .await
            .expect(statement);
    }
    pages_follow_creation_order(format!("postgres://postgres@127.0.0.1:5432/{name}")).await;
    sqlx::query(&statements[0])
        .execute(&admin)
        .await
        .expect("drop the test's database");
    admin.close().await;
}
