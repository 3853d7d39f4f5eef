//! A load client for end-to-end throughput benchmarks: many calls in flight over one HTTP/2
//! connection to a real server.

use crate::pb::TestRequest;
use crate::pb::test_service_client::TestServiceClient;
use std::future::Future;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Runs `calls` calls made by `call`, `in_flight` at a time, and returns how long they took.
/// Each call must succeed (a failed call panics: a benchmark of errors measures nothing).
pub async fn throughput<F, Fut>(call: F, in_flight: usize, calls: u64) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let in_flight = in_flight.max(1) as u64;
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|i| {
            // Spread the remainder over the first workers.
            let share = calls / in_flight + u64::from(i < calls % in_flight);
            let call = call.clone();
            tokio::spawn(async move {
                for _ in 0..share {
                    call().await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("load worker");
    }
    started.elapsed()
}

/// [`throughput`] of the test service's unary method with `request`.
pub async fn unary_throughput(
    client: &TestServiceClient<Channel>,
    request: &TestRequest,
    in_flight: usize,
    calls: u64,
) -> Duration {
    let (client, request) = (client.clone(), request.clone());
    let call = move || {
        let (mut client, request) = (client.clone(), request.clone());
        async move {
            client.unary(request).await.expect("call under load");
        }
    };
    throughput(call, in_flight, calls).await
}

/// Throughput of `candidate` relative to `baseline` (above 1: faster), measured in `rounds`
/// alternating rounds of `calls` calls each so both see the same machine; returns each
/// round's ratio, sorted.
pub async fn paired_ratios_with<A, FutA, B, FutB>(
    baseline: A,
    candidate: B,
    in_flight: usize,
    calls: u64,
    rounds: usize,
) -> Vec<f64>
where
    A: Fn() -> FutA + Clone + Send + 'static,
    FutA: Future<Output = ()> + Send + 'static,
    B: Fn() -> FutB + Clone + Send + 'static,
    FutB: Future<Output = ()> + Send + 'static,
{
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Alternate which goes first, so drift during a round favours neither.
        let (base, cand) = if round % 2 == 0 {
            let base = throughput(baseline.clone(), in_flight, calls).await;
            (base, throughput(candidate.clone(), in_flight, calls).await)
        } else {
            let cand = throughput(candidate.clone(), in_flight, calls).await;
            (throughput(baseline.clone(), in_flight, calls).await, cand)
        };
        ratios.push(base.as_secs_f64() / cand.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    ratios
}

/// [`paired_ratios_with`] for the test service's unary method on two servers.
pub async fn paired_ratios(
    baseline: &TestServiceClient<Channel>,
    candidate: &TestServiceClient<Channel>,
    request: &TestRequest,
    in_flight: usize,
    calls: u64,
    rounds: usize,
) -> Vec<f64> {
    let unary = |client: &TestServiceClient<Channel>| {
        let (client, request) = (client.clone(), request.clone());
        move || {
            let (mut client, request) = (client.clone(), request.clone());
            async move {
                client.unary(request).await.expect("call under load");
            }
        }
    };
    paired_ratios_with(unary(baseline), unary(candidate), in_flight, calls, rounds).await
}

/// The median of sorted `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
