//! A closed-loop load generator for `make bench`: `load URL SECONDS CONCURRENCY` keeps
//! CONCURRENCY `ShouldRateLimit` calls in flight (each a counted descriptor with a limit never
//! reached) and prints calls/s and p50/p99 latency.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
    rate_limit_descriptor::{Entry, RateLimitOverride},
    RateLimitDescriptor,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{
    rate_limit_service_client::RateLimitServiceClient, RateLimitRequest,
};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(seconds), Some(concurrency)) = (args.get(1), args.get(2), args.get(3))
    else {
        return Err("usage: load URL SECONDS CONCURRENCY".into());
    };
    let seconds: u64 = seconds.parse()?;
    let concurrency: usize = concurrency.parse()?;
    let channel = tonic::transport::Channel::from_shared(url.clone())?
        .connect()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let mut client = RateLimitServiceClient::new(channel.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let request = RateLimitRequest {
                    domain: "bench".into(),
                    descriptors: vec![RateLimitDescriptor {
                        entries: vec![
                            Entry {
                                key: "consumer".into(),
                                value: format!("bench-{}", worker % 16),
                            },
                            Entry {
                                key: "limit".into(),
                                value: "rate_limit".into(),
                            },
                        ],
                        limit: Some(RateLimitOverride {
                            requests_per_unit: 4_000_000_000,
                            unit: 2,
                        }),
                        ..Default::default()
                    }],
                    hits_addend: 1,
                };
                let started = Instant::now();
                match client.should_rate_limit(request).await {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut done, failed) = worker.await?;
        latencies.append(&mut done);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q) as usize;
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!("| calls/s | p50 ms | p99 ms | errors | concurrency |");
    println!("|---|---|---|---|---|");
    println!(
        "| {:.0} | {:.2} | {:.2} | {} | {} |",
        latencies.len() as f64 / elapsed,
        at(0.5),
        at(0.99),
        errors,
        concurrency
    );
    Ok(())
}
