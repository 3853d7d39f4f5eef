//! The shutdown signal, listened for from the moment it is asked for.

use std::future::Future;

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
///
/// The signal handlers are installed when this is **called**, not when the future is first
/// polled: call it before the server announces its address, so a SIGTERM that arrives the
/// moment the server serves (an orchestrator stopping a pod as it starts) is a graceful stop
/// rather than the default action, which kills the process and resets every connection.
///
/// ```no_run
/// # async fn run(server: tonic_blueprint::server::Server, routes: tonic::service::Routes)
/// # -> Result<(), tonic_blueprint::server::ServeError> {
/// let stop = tonic_blueprint::server::shutdown_signal(); // listening from here
/// let running = server.start(routes).await?;
/// println!("listening on {}", running.local_addr());
/// stop.await;
/// running.shutdown().await
/// # }
/// ```
///
/// Called outside a Tokio runtime, the handlers are installed at the first poll instead. A
/// signal that cannot be listened for is logged at warn and never resolves the future (it
/// does not stop the server at once).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let listening = tokio::runtime::Handle::try_current()
        .is_ok()
        .then(Listening::start);
    async move { listening.unwrap_or_else(Listening::start).first().await }
}

/// The installed handlers.
struct Listening {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Listening {
    #[cfg(unix)]
    fn start() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let open = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::warn!(error = %e, signal = name, "cannot listen for the signal; it will not stop the server gracefully");
                None
            }
        };
        Listening {
            terminate: open(SignalKind::terminate(), "SIGTERM"),
            interrupt: open(SignalKind::interrupt(), "SIGINT"),
        }
    }

    #[cfg(not(unix))]
    fn start() -> Self {
        Listening {}
    }

    #[cfg(unix)]
    async fn first(mut self) {
        async fn one(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.terminate) => {}
            _ = one(&mut self.interrupt) => {}
        }
    }

    #[cfg(not(unix))]
    async fn first(self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
