//! [`Events`]: the connection, its JetStream context, and shutdown.

use super::config::{
    NatsConfig, Storage, StreamConfig, exponential, full_jitter, redact_url, url_secrets,
};
use super::consumer::ConsumerControl;
use super::error::EventsError;
use super::subject::{check_filter, check_name};
use async_nats::jetstream;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The longest wait between two connection attempts.
const MAX_CONNECT_BACKOFF_MS: u64 = 30_000;

/// A NATS connection for events: typed publishes, queue consumers and JetStream
/// consumers with retries and a dead-letter subject.
///
/// Cheap to clone (one connection shared). Call [`Events::drain`] at shutdown.
#[derive(Clone)]
pub struct Events {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: Option<jetstream::Context>,
    pub(crate) config: NatsConfig,
    pub(crate) server: String,
    consumers: Mutex<Vec<ConsumerControl>>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("server", &self.inner.server)
            .field("jetstream", &self.inner.jetstream.is_some())
            .field("consumers", &self.consumer_count())
            .finish()
    }
}

impl Events {
    /// Connects, retrying up to `connect_attempts` times with exponential backoff (full
    /// jitter), then
    /// (with `jetstream` on) creates or updates the configured streams.
    ///
    /// The error names the server (credentials removed) and the last attempt's failure.
    /// Once connected, the client reconnects by itself after a lost connection
    /// (`max_reconnects`).
    pub async fn connect(config: &NatsConfig) -> Result<Self, EventsError> {
        let server = config.server_display();
        let secrets = url_secrets(&config.url);
        let scrub = |text: String| {
            secrets
                .iter()
                .fold(text, |text, secret| text.replace(secret.as_str(), "***"))
        };
        let addrs = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                u.parse::<async_nats::ServerAddr>().map_err(|e| {
                    EventsError::Config(scrub(format!("invalid NATS URL {}: {e}", redact_url(u))))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err(EventsError::Config("no NATS URL given".to_owned()));
        }
        let security = config.security().map_err(EventsError::Config)?;
        let tls = crate::nats_tls::asks_for_tls(&config.url);
        let attempts = config.connect_attempts.max(1);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            let options = crate::nats_tls::secure(connect_options(config), &config.url, security)
                .await
                .map_err(EventsError::Config)?;
            match options.connect(addrs.clone()).await {
                Ok(client) => {
                    tracing::info!(nats.server = %server, nats.attempt = attempt, "connected to NATS");
                    return Self::ready(client, config, server).await;
                }
                Err(e) => {
                    last_error = scrub(e.to_string());
                    if tls {
                        // Never plaintext: say why a tls:// URL did not connect.
                        last_error.push_str(" (the tls:// URL requires TLS: the server must speak it, with a certificate that chains to the CA file)");
                    }
                    tracing::warn!(
                        nats.server = %server,
                        nats.attempt = attempt,
                        error = %last_error,
                        "NATS connection attempt failed"
                    );
                    if attempt < attempts {
                        let wait = full_jitter(exponential(
                            config.connect_backoff_ms,
                            MAX_CONNECT_BACKOFF_MS,
                            attempt,
                        ));
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Err(EventsError::Connect {
            server,
            attempts,
            reason: last_error,
        })
    }

    async fn ready(
        client: async_nats::Client,
        config: &NatsConfig,
        server: String,
    ) -> Result<Self, EventsError> {
        let jetstream = config.jetstream.then(|| {
            let mut context = jetstream::new(client.clone());
            context.set_timeout(Duration::from_millis(config.publish_timeout_ms.max(1)));
            context
        });
        let events = Self {
            inner: Arc::new(Inner {
                client,
                jetstream,
                config: config.clone(),
                server,
                consumers: Mutex::new(Vec::new()),
            }),
        };
        for stream in &config.streams {
            events.ensure_stream(stream).await?;
        }
        Ok(events)
    }

    /// Creates the stream, or updates it to this configuration.
    pub async fn ensure_stream(&self, stream: &StreamConfig) -> Result<(), EventsError> {
        let context = self.jetstream_context()?;
        let invalid = |reason: String| EventsError::Stream {
            stream: stream.name.clone(),
            reason,
        };
        check_name("stream", &stream.name).map_err(invalid)?;
        if stream.subjects.is_empty() {
            return Err(invalid("no subjects".to_owned()));
        }
        for subject in &stream.subjects {
            check_filter(subject).map_err(invalid)?;
        }
        let config = jetstream::stream::Config {
            name: stream.name.clone(),
            subjects: stream.subjects.clone(),
            max_age: Duration::from_secs(stream.max_age_secs),
            duplicate_window: Duration::from_secs(stream.duplicate_window_secs),
            storage: match stream.storage {
                Storage::File => jetstream::stream::StorageType::File,
                Storage::Memory => jetstream::stream::StorageType::Memory,
            },
            num_replicas: stream.replicas.max(1),
            ..Default::default()
        };
        context
            .create_or_update_stream(config)
            .await
            .map_err(|e| invalid(e.to_string()))?;
        tracing::info!(
            nats.stream = %stream.name,
            nats.subjects = ?stream.subjects,
            "JetStream stream ready"
        );
        Ok(())
    }

    /// Stops every consumer (no new messages; those being handled finish, within
    /// `drain_timeout_ms`), flushes what was published, then drains the connection
    /// ([`async_nats::Client::drain`]): subscriptions end and further operations fail.
    ///
    /// JetStream messages a consumer had fetched but not started are redelivered (after
    /// `ack_wait`) to another replica; core messages already received are handled before
    /// the subscription ends.
    pub async fn drain(&self) -> Result<(), EventsError> {
        let consumers = std::mem::take(
            &mut *self
                .inner
                .consumers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for consumer in &consumers {
            consumer.stop();
        }
        let wait = Duration::from_millis(self.inner.config.drain_timeout_ms);
        let finished =
            futures_util::future::join_all(consumers.iter().map(ConsumerControl::finished));
        if tokio::time::timeout(wait, finished).await.is_err() {
            let pending = consumers.iter().filter(|c| !c.is_finished()).count();
            tracing::warn!(
                nats.server = %self.inner.server,
                consumers = pending,
                "NATS consumers still busy when the drain timeout ran out"
            );
        }
        if let Err(e) = self.inner.client.flush().await {
            tracing::warn!(nats.server = %self.inner.server, error = %e, "NATS flush before drain failed");
        }
        self.inner
            .client
            .drain()
            .await
            .map_err(|e| EventsError::Drain(e.to_string()))?;
        tracing::info!(nats.server = %self.inner.server, "NATS connection drained");
        Ok(())
    }

    /// The underlying client, for what this helper does not cover.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context, when `jetstream` is on.
    pub fn jetstream(&self) -> Option<&jetstream::Context> {
        self.inner.jetstream.as_ref()
    }

    /// The configuration it was connected with.
    pub fn config(&self) -> &NatsConfig {
        &self.inner.config
    }

    /// The server list, credentials removed.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    pub(crate) fn jetstream_context(&self) -> Result<&jetstream::Context, EventsError> {
        self.inner
            .jetstream
            .as_ref()
            .ok_or(EventsError::JetStreamDisabled)
    }

    /// `request`'s result once the server has it (the connection flushed); an error of
    /// either step as `failed` makes it (`flush: ...` for the flush).
    pub(crate) async fn flushed<T, X, E>(
        &self,
        request: impl Future<Output = Result<T, X>>,
        failed: impl Fn(String) -> E,
    ) -> Result<T, E>
    where
        X: fmt::Display,
    {
        let value = request.await.map_err(|e| failed(e.to_string()))?;
        self.inner
            .client
            .flush()
            .await
            .map_err(|e| failed(format!("flush: {e}")))?;
        Ok(value)
    }

    pub(crate) fn register(&self, control: ConsumerControl) {
        let mut consumers = self
            .inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        consumers.retain(|c| !c.is_finished());
        consumers.push(control);
    }

    fn consumer_count(&self) -> usize {
        self.inner
            .consumers
            .lock()
            .map(|c| c.len())
            .unwrap_or_default()
    }
}

fn connect_options(config: &NatsConfig) -> async_nats::ConnectOptions {
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
        .max_reconnects(config.max_reconnects);
    if let Some(name) = &config.name {
        options = options.name(name);
    }
    options
}
