//! The payments service. With no environment at all it runs on its embedded defaults: gRPC
//! on 127.0.0.1:50051, `/metrics` on 127.0.0.1:9090, SQLite in `data/payments.db`, the
//! in-process cache and rate limiter, and no events. `REDIS_URL`, `NATS_URL` and a
//! `postgres://` `DATABASE_URL` switch each part to the real thing; see `export.sh` here.
//!
//! `TLS_CERT_FILE` and `TLS_KEY_FILE` make it speak only TLS (`TLS_CLIENT_CA_FILE`: every
//! client needs a certificate of that CA); `rediss://`, `sslmode=verify-full` and `tls://`
//! take Redis, PostgreSQL and NATS over TLS, verified against `REDIS_CA_FILE`, `sslrootcert`
//! and `NATS_CA_FILE`. A URL that asks for TLS is never served in plaintext.
//!
//! Every call needs a bearer JWT. The default `AUTH_JWT_SECRET` is the development secret
//! `dev-secret` (the service warns when it runs with it): set your own, or set it empty and
//! point `AUTH_JWKS_URL` at your identity provider.
//!
//! `WatchPayments` streams have no server deadline (`STREAM_TIMEOUT_SECONDS` sets one) and
//! are limited by `MAX_WATCHERS`, `MAX_WATCHERS_PER_USER` and `WATCH_HISTORY` (see
//! [`payments_example::config`]).
//!
//! Prints `listening on <addr>` once it serves; SIGTERM or Ctrl-C stops it gracefully: the
//! watches end first (UNAVAILABLE, with their resume position), then in-flight calls drain.
//!
//! For fault tests only, `PAYMENTS_CLOCK_SKEW_MS` (a signed number of milliseconds) shifts
//! the clock this replica stamps payment ids and times with, to play a replica whose clock
//! is off.

use payments_example::MIGRATIONS;
use payments_example::announce::Announcer;
use payments_example::config::watch_config;
use payments_example::hub::Hub;
use payments_example::pb::payment_service_server::PaymentServiceServer;
use payments_example::pb::{
    CreatePaymentRequest, DESCRIPTOR_SET, GetPaymentRequest, ListPaymentsRequest,
    WatchPaymentsRequest,
};
use payments_example::service::Payments;
use payments_example::store::Store;
use payments_example::token::DEV_SECRET;
use std::process::ExitCode;
use tonic::service::Routes;
use tonic_blueprint::config::{ConfigError, Loader};
use tonic_blueprint::db::{Database, DatabaseConfig};
use tonic_blueprint::events::NatsConfig;
use tonic_blueprint::server::{Server, init_logging, shutdown_signal};

/// The embedded database when `DATABASE_URL` is empty.
const EMBEDDED_DATABASE: &str = "sqlite://data/payments.db";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("payments: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The kit's variables and the service's own, every problem of both reported at once.
    let (config, watch) = match (
        payments_example::with_defaults(Loader::from_env()).load(),
        watch_config(std::env::vars()),
    ) {
        (Ok(config), Ok(watch)) => (config, watch),
        (kit, own) => {
            let mut problems = kit.err().map(|e| e.problems).unwrap_or_default();
            problems.extend(own.err().map(|e| e.problems).unwrap_or_default());
            return Err(ConfigError { problems }.into());
        }
    };
    let clock_skew_ms = match std::env::var("PAYMENTS_CLOCK_SKEW_MS") {
        Ok(ms) if !ms.trim().is_empty() => ms.trim().parse::<i64>().map_err(|_| {
            format!("PAYMENTS_CLOCK_SKEW_MS={ms:?}: not a whole number of milliseconds")
        })?,
        _ => 0,
    };
    let _logs = init_logging(&config)?;
    // A client certificate names the caller too (TLS_CLIENT_CA_FILE, AUTH_MTLS_IDENTITY).
    let certificate_callers = config.tls.client_auth() && config.auth.mtls_identity.trim() != "off";
    if !config.auth.enabled() && !certificate_callers {
        return Err(
            "every call needs a verified caller: set AUTH_JWT_SECRET or AUTH_JWKS_URL (or TLS_CLIENT_CA_FILE with AUTH_MTLS_IDENTITY)".into(),
        );
    }
    if config.auth.jwt_secret == DEV_SECRET {
        tracing::warn!(
            "AUTH_JWT_SECRET is the development secret {DEV_SECRET:?}, with which anyone can mint tokens: \
             in production set AUTH_JWT_SECRET to a secret of your own, or set it empty and use AUTH_JWKS_URL"
        );
    }

    let database = Database::connect(&DatabaseConfig {
        max_connections: config.database.max_connections,
        migrations: Some(MIGRATIONS.into()),
        ..DatabaseConfig::new(match config.database.url.trim() {
            "" => EMBEDDED_DATABASE,
            url => url,
        })
    })
    .await
    .map_err(|e| format!("DATABASE_URL: {e}"))?;
    let store = Store::new(database.clone()).with_clock_skew_ms(clock_skew_ms);
    if clock_skew_ms != 0 {
        tracing::warn!(
            clock_skew_ms,
            "PAYMENTS_CLOCK_SKEW_MS is set: payment ids and times are stamped with a shifted clock (fault tests only)"
        );
    }
    let in_flight = usize::try_from(config.server.max_in_flight).unwrap_or(usize::MAX);
    if in_flight != 0 && watch.max_watchers >= in_flight {
        tracing::warn!(
            max_watchers = watch.max_watchers,
            max_in_flight = in_flight,
            "MAX_WATCHERS is not below MAX_IN_FLIGHT: open watches alone can fill the in-flight limit and every other call is then refused"
        );
    }
    let hub = Hub::start(store.clone(), watch).await?;
    let announcer = match config.nats.get() {
        // NATS_URL with NATS_CA_FILE, a client certificate, NATS_CREDS_FILE: named on failure.
        Some(_) => Announcer::connect_with(
            NatsConfig::from_section(&config.nats),
            store.clone(),
            hub.clone(),
        )
        .await
        .map_err(|e| format!("NATS_URL: {e}"))?,
        None => Announcer::local(store.clone()),
    };
    let relay = announcer.publishes().then(|| announcer.spawn_relay());

    // Listening before the address is printed: a SIGTERM right after it stops gracefully.
    let stop = shutdown_signal();
    let server = Server::new(config).descriptors(DESCRIPTOR_SET);
    let mut stack = server.preset_stack().await?;
    // The request types' compiled rules: valid requests skip the reflection engine. A
    // request type with rules left out here stops the service at start-up, named.
    if let Some(validation) = stack.validation.take() {
        stack.validation = Some(
            validation
                .compiled::<CreatePaymentRequest>()?
                .compiled::<GetPaymentRequest>()?
                .compiled::<ListPaymentsRequest>()?
                .compiled::<WatchPaymentsRequest>()?
                .require_compiled()?,
        );
    }
    let invalidator = stack.cache.as_ref().map(|cache| cache.invalidator());
    let routes = Routes::new(PaymentServiceServer::new(Payments::new(
        store,
        announcer.clone(),
        hub.clone(),
        invalidator,
    )));
    let running = server
        .stack(stack)
        .on_shutdown(async move {
            if let Some(relay) = relay {
                relay.abort();
            }
            if let Some(events) = announcer.events()
                && let Err(e) = events.drain().await
            {
                tracing::warn!(error = %e, "NATS did not drain");
            }
            database.close().await;
        })
        .start(routes)
        .await?;
    println!("listening on {}", running.local_addr());
    if let Some(metrics) = running.metrics_addr() {
        println!("metrics on http://{metrics}/metrics");
    }
    stop.await;
    // Watches have no deadline: end them first (clients resume on another replica), so the
    // drain waits only for ordinary calls.
    hub.close();
    running.shutdown().await?;
    Ok(())
}
