//! A client for the payments example: creates a payment (and retries it with the same
//! idempotency key, which returns the same payment), fetches it twice (the second answer
//! comes from the cache), lists the user's payments, then watches for new ones while it
//! creates one more, stops watching, creates another and resumes the watch after the last
//! payment it saw (`after_sequence`), which delivers the one it missed. Prints what it sees.
//!
//! `cargo run -p payments-example --bin payments-client -- [http://127.0.0.1:50051] [--user NAME]`
//!
//! It calls as `--user` (default `user-1`; a second positional argument works too) with a
//! bearer JWT it mints itself: HS256 with `AUTH_JWT_SECRET` from the environment (default
//! `dev-secret`, the service's development default), `sub` = the user, valid for an hour.
//!
//! An `https://` address is called over TLS: the server verified against the CA in
//! `PAYMENTS_CA_FILE` (else the system's roots), presenting the client certificate of
//! `PAYMENTS_CERT_FILE` and `PAYMENTS_KEY_FILE` when set (for a server with
//! `TLS_CLIENT_CA_FILE`).

use payments_example::metadata_text;
use payments_example::pb::payment_service_client::PaymentServiceClient;
use payments_example::pb::{
    CreatePaymentRequest, GetPaymentRequest, ListPaymentsRequest, Payment, WatchPaymentsRequest,
};
use payments_example::service::IDEMPOTENCY_KEY;
use payments_example::token::{DEV_SECRET, authorize, mint};
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Request;
use tonic_types::StatusExt;

const USAGE: &str = "usage: payments-client [http://127.0.0.1:50051] [--user NAME]";

/// The address and the user from the command line.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(String, String), String> {
    let mut positional = Vec::new();
    let mut user = None;
    while let Some(arg) = args.next() {
        if arg == "--user" {
            user = Some(args.next().ok_or(USAGE)?);
        } else if let Some(name) = arg.strip_prefix("--user=") {
            user = Some(name.to_owned());
        } else if arg.starts_with('-') {
            return Err(format!("unknown argument {arg}\n{USAGE}"));
        } else {
            positional.push(arg);
        }
    }
    let mut positional = positional.into_iter();
    let addr = positional
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    // The user as a second positional argument, as before `--user`.
    let user = match (user, positional.next()) {
        (Some(_), Some(_)) => return Err(format!("the user is given twice\n{USAGE}")),
        (Some(user), None) | (None, Some(user)) => user,
        (None, None) => "user-1".to_owned(),
    };
    if positional.next().is_some() {
        return Err(USAGE.to_owned());
    }
    if user.is_empty() {
        return Err(format!("the user is empty\n{USAGE}"));
    }
    Ok((addr, user))
}

/// A channel to `addr`: plaintext for `http://`, TLS for `https://` (see the module docs).
async fn channel(addr: &str) -> Result<tonic::transport::Channel, Box<dyn std::error::Error>> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let endpoint = Endpoint::from_shared(addr.to_owned())?;
    if !addr.starts_with("https://") {
        return Ok(endpoint.connect().await?);
    }
    let file = |name: &str| -> Result<Option<Vec<u8>>, String> {
        match std::env::var(name) {
            Ok(path) if !path.trim().is_empty() => std::fs::read(path.trim())
                .map(Some)
                .map_err(|e| format!("{name}={path}: {e}")),
            _ => Ok(None),
        }
    };
    let mut tls = ClientTlsConfig::new().with_native_roots();
    if let Some(ca) = file("PAYMENTS_CA_FILE")? {
        tls = tls.ca_certificate(Certificate::from_pem(ca));
    }
    if let (Some(cert), Some(key)) = (file("PAYMENTS_CERT_FILE")?, file("PAYMENTS_KEY_FILE")?) {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Ok(endpoint.tls_config(tls)?.connect().await?)
}

/// A request carrying the caller's token (who calls: rate limits and cache entries are per
/// user) and a request id to find the call in the server's logs.
fn request<T>(message: T, token: &str, request_id: &str) -> Request<T> {
    let mut request = Request::new(message);
    authorize(&mut request, token);
    if let Ok(id) = request_id.parse() {
        request.metadata_mut().insert("x-request-id", id);
    }
    request.set_timeout(Duration::from_secs(10));
    request
}

/// A `CreatePayment` request with an idempotency key: sent again with the same key, it
/// returns the same payment instead of making a second one.
fn create<T>(message: T, token: &str, request_id: &str, key: &str) -> Request<T> {
    let mut request = request(message, token, request_id);
    if let Ok(key) = key.parse() {
        request.metadata_mut().insert(IDEMPOTENCY_KEY, key);
    }
    request
}

/// An amount in cents as units with two decimals, exactly (no float rounding).
fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

fn show(payment: &Payment) -> String {
    format!(
        "{} {} {} {} {:?} ({})",
        payment.id,
        payment.user_id,
        amount(payment.amount_cents),
        payment.currency,
        payment.description,
        payment.status().as_str_name()
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, user) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(usage) => {
            eprintln!("payments-client: {usage}");
            std::process::exit(2);
        }
    };
    let secret = std::env::var("AUTH_JWT_SECRET").unwrap_or_else(|_| DEV_SECRET.to_owned());
    let token = mint(&secret, &user, Duration::from_secs(3600))?;
    let mut client = PaymentServiceClient::new(channel(&addr).await?);
    println!("connected to {addr} as {user} (bearer JWT, HS256, sub {user:?}, expires in 1 h)");

    // One key per intended payment; a retry of that payment sends it again.
    let key = uuid::Uuid::now_v7().simple().to_string();
    let coffee = CreatePaymentRequest {
        user_id: user.clone(),
        amount_cents: 1250,
        currency: "EUR".to_owned(),
        description: "coffee beans".to_owned(),
    };
    let created = client
        .create_payment(create(coffee.clone(), &token, "client-create-1", &key))
        .await?;
    println!(
        "created  {} (x-request-id {}, idempotency-key {key})",
        show(created.get_ref()),
        metadata_text(&created, "x-request-id")
    );
    let id = created.into_inner().id;
    let retried = client
        .create_payment(create(coffee, &token, "client-create-1-retry", &key))
        .await?
        .into_inner();
    if retried.id != id {
        return Err(format!(
            "the retry with idempotency-key {key} made a second payment {}",
            retried.id
        )
        .into());
    }
    println!(
        "retried  {} (same idempotency-key: same payment, none added)",
        retried.id
    );

    for attempt in 1..=2 {
        let got = client
            .get_payment(request(
                GetPaymentRequest { id: id.clone() },
                &token,
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
            &token,
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
        .create_payment(create(
            CreatePaymentRequest {
                user_id: user.clone(),
                amount_cents: 0,
                currency: "euro".to_owned(),
                description: String::new(),
            },
            &token,
            "client-invalid-1",
            &uuid::Uuid::now_v7().simple().to_string(),
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

    // A watch has no deadline: it stays open as long as the client wants.
    let watch = |after_sequence: Option<u64>, request_id: &str| {
        let mut watch = request(
            WatchPaymentsRequest {
                user_id: user.clone(),
                after_sequence,
            },
            &token,
            request_id,
        );
        // No grpc-timeout: the watch runs until the client drops it.
        watch.metadata_mut().remove("grpc-timeout");
        watch
    };
    let mut watching = client
        .watch_payments(watch(None, "client-watch-1"))
        .await?
        .into_inner();
    let mut watcher = client.clone();
    let watched = create(
        CreatePaymentRequest {
            user_id: user.clone(),
            amount_cents: 399,
            currency: "EUR".to_owned(),
            description: "watched".to_owned(),
        },
        &token,
        "client-create-2",
        &uuid::Uuid::now_v7().simple().to_string(),
    );
    // The watch is open once its response headers arrived (above); create after it.
    let creating = tokio::spawn(async move { watcher.create_payment(watched).await });
    let seen = next_watched(&mut watching).await?;
    println!("watched  {} (sequence {})", show(&seen), seen.sequence);
    creating.await??;
    drop(watching);

    // Not watching: this one is missed, until the watch resumes after the last one seen.
    let missed = client
        .create_payment(create(
            CreatePaymentRequest {
                user_id: user.clone(),
                amount_cents: 150,
                currency: "EUR".to_owned(),
                description: "while away".to_owned(),
            },
            &token,
            "client-create-3",
            &uuid::Uuid::now_v7().simple().to_string(),
        ))
        .await?
        .into_inner();
    let mut resumed = client
        .watch_payments(watch(Some(seen.sequence), "client-watch-2"))
        .await?
        .into_inner();
    let caught_up = next_watched(&mut resumed).await?;
    if caught_up.id != missed.id {
        return Err(format!(
            "the resumed watch delivered {} first, not the missed {}",
            caught_up.id, missed.id
        )
        .into());
    }
    println!(
        "resumed  {} (sequence {}, after_sequence {})",
        show(&caught_up),
        caught_up.sequence,
        seen.sequence
    );
    Ok(())
}

/// The watch's next payment within 10 s.
async fn next_watched(
    watch: &mut tonic::Streaming<Payment>,
) -> Result<Payment, Box<dyn std::error::Error>> {
    match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(Ok(payment))) => Ok(payment),
        Ok(Some(Err(status))) => Err(format!("the watch ended: {status}").into()),
        Ok(None) => Err("the watch ended".into()),
        Err(_) => Err("no payment seen within 10 s".into()),
    }
}
