//! A load client for end-to-end throughput benchmarks: many unary calls in flight over one
//! HTTP/2 connection to a real server.

use crate::pb::TestRequest;
use crate::pb::test_service_client::TestServiceClient;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Makes `calls` unary calls of `request`, `in_flight` at a time, and returns how long they
/// took. Every call must succeed (a failed call panics: a benchmark of errors measures
/// nothing).
pub async fn unary_throughput(
    client: &TestServiceClient<Channel>,
    request: &TestRequest,
    in_flight: usize,
    calls: u64,
) -> Duration {
    let in_flight = in_flight.max(1) as u64;
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|i| {
            // Spread the remainder over the first workers.
            let share = calls / in_flight + u64::from(i < calls % in_flight);
            let mut client = client.clone();
            let request = request.clone();
            tokio::spawn(async move {
                for _ in 0..share {
                    client
                        .unary(request.clone())
                        .await
                        .expect("call under load");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("load worker");
    }
    started.elapsed()
}

/// Throughput of `candidate` relative to `baseline` (above 1: faster), measured in `rounds`
/// alternating rounds of `calls` calls each so both see the same machine; returns each
/// round's ratio, sorted.
pub async fn paired_ratios(
    baseline: &TestServiceClient<Channel>,
    candidate: &TestServiceClient<Channel>,
    request: &TestRequest,
    in_flight: usize,
    calls: u64,
    rounds: usize,
) -> Vec<f64> {
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Alternate which goes first, so drift during a round favours neither.
        let (base, cand) = if round % 2 == 0 {
            let base = unary_throughput(baseline, request, in_flight, calls).await;
            (
                base,
                unary_throughput(candidate, request, in_flight, calls).await,
            )
        } else {
            let cand = unary_throughput(candidate, request, in_flight, calls).await;
            (
                unary_throughput(baseline, request, in_flight, calls).await,
                cand,
            )
        };
        ratios.push(base.as_secs_f64() / cand.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    ratios
}

/// The median of sorted `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
