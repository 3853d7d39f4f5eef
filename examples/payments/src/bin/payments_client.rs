//! A client for the payments example: creates a payment, fetches it twice (the second answer
//! comes from the cache), lists the user's payments, then watches for new ones while it
//! creates one more. Prints what it sees.
//!
//! `cargo run -p payments-example --bin payments-client -- [http://127.0.0.1:50051] [user]`

use payments_example::metadata_text;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{
    CreatePaymentRequest, GetPaymentRequest, ListPaymentsRequest, Payment, WatchPaymentsRequest,
};
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Request;
use tonic_types::StatusExt;

/// A request carrying the caller's id (rate limits and cache entries are per user) and a
/// request id to find the call in the server's logs.
fn request<T>(message: T, user: &str, request_id: &str) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(user) = user.parse() {
        request.metadata_mut().insert("x-user-id", user);
    }
    if let Ok(id) = request_id.parse() {
        request.metadata_mut().insert("x-request-id", id);
    }
    request.set_timeout(Duration::from_secs(10));
    request
}

fn show(payment: &Payment) -> String {
    format!(
        "{} {} {:.2} {} {:?} ({})",
        payment.id,
        payment.user_id,
        payment.amount_cents as f64 / 100.0,
        payment.currency,
        payment.description,
        payment.status().as_str_name()
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let user = args.next().unwrap_or_else(|| "user-1".to_owned());
    let mut client = PaymentServiceClient::connect(addr.clone()).await?;
    println!("connected to {addr} as {user}");

    let created = client
        .create_payment(request(
            CreatePaymentRequest {
                user_id: user.clone(),
                amount_cents: 1250,
                currency: "EUR".to_owned(),
                description: "coffee beans".to_owned(),
            },
            &user,
            "client-create-1",
        ))
        .await?;
    println!(
        "created  {} (x-request-id {})",
        show(created.get_ref()),
        metadata_text(&created, "x-request-id")
    );
    let id = created.into_inner().id;

    for attempt in 1..=2 {
        let got = client
            .get_payment(request(
                GetPaymentRequest { id: id.clone() },
                &user,
                &format!("client-get-{attempt}"),
            ))
            .await?;
        println!(
            "fetched  {} (x-cache {})",
            show(got.get_ref()),
            metadata_text(&got, "x-cache")
        );
    }

    let page = client
        .list_payments(request(
            ListPaymentsRequest {
                user_id: user.clone(),
                page_size: 10,
                page_token: String::new(),
            },
            &user,
            "client-list-1",
        ))
        .await?;
    println!(
        "listed   {} payment(s) (x-cache {}, next page {:?})",
        page.get_ref().payments.len(),
        metadata_text(&page, "x-cache"),
        page.get_ref().next_page_token
    );

    let invalid = client
        .create_payment(request(
            CreatePaymentRequest {
                user_id: user.clone(),
                amount_cents: 0,
                currency: "euro".to_owned(),
                description: String::new(),
            },
            &user,
            "client-invalid-1",
        ))
        .await;
    if let Err(status) = invalid {
        println!("refused  {:?}: {}", status.code(), status.message());
        if let Some(bad) = status.get_details_bad_request() {
            for violation in bad.field_violations {
                println!("         {}: {}", violation.field, violation.description);
            }
        }
    }

    let mut watch = client
        .watch_payments(request(
            WatchPaymentsRequest {
                user_id: user.clone(),
            },
            &user,
            "client-watch-1",
        ))
        .await?
        .into_inner();
    let mut watcher = client.clone();
    let creator_user = user.clone();
    let creating = tokio::spawn(async move {
        // The watch is open once its response headers arrived (above); create after it.
        watcher
            .create_payment(request(
                CreatePaymentRequest {
                    user_id: creator_user.clone(),
                    amount_cents: 399,
                    currency: "EUR".to_owned(),
                    description: "watched".to_owned(),
                },
                &creator_user,
                "client-create-2",
            ))
            .await
    });
    let seen = match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(Ok(payment))) => {
            println!("watched  {}", show(&payment));
            Ok(())
        }
        Ok(Some(Err(status))) => Err(format!("the watch ended: {status}")),
        Ok(None) => Err("the watch ended".to_owned()),
        Err(_) => Err("no payment seen within 10 s".to_owned()),
    };
    creating.await??;
    Ok(seen?)
}
