//! A small HTTP load generator for Coursegate's benchmarks (docs/benchmarks.md).
//!
//! `loadgen --url URL [--cookie NAME=VALUE] [-c 16] [-d 10] [--warmup 2]`
//! keeps `c` connections busy with GET requests for `d` seconds and prints
//! requests/s, p50, p90, p99 and max latency, and the error count.

use std::time::{Duration, Instant};

fn arg(args: &[String], names: &[&str]) -> Option<String> {
    args.windows(2)
        .find(|w| names.contains(&w[0].as_str()))
        .map(|w| w[1].clone())
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = arg(&args, &["--url", "-u"]) else {
        eprintln!("usage: loadgen --url URL [--cookie NAME=VALUE] [-c CONCURRENCY] [-d SECONDS] [--warmup SECONDS]");
        std::process::exit(2);
    };
    let cookie = arg(&args, &["--cookie"]);
    let conc: usize = arg(&args, &["-c", "--concurrency"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let secs: u64 = arg(&args, &["-d", "--duration"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let warmup: u64 = arg(&args, &["--warmup"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(conc)
        .build()
        .unwrap_or_default();

    let run = |dur: Duration| {
        let client = client.clone();
        let url = url.clone();
        let cookie = cookie.clone();
        async move {
            let end = Instant::now() + dur;
            let tasks: Vec<_> = (0..conc)
                .map(|_| {
                    let client = client.clone();
                    let url = url.clone();
                    let cookie = cookie.clone();
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        let mut errors = 0u64;
                        while Instant::now() < end {
                            let t = Instant::now();
                            let mut req = client.get(&url);
                            if let Some(c) = &cookie {
                                req = req.header("cookie", c);
                            }
                            match req.send().await {
                                Ok(r) if r.status().is_success() => {
                                    let _ = r.bytes().await;
                                    lat.push(t.elapsed());
                                }
                                _ => errors += 1,
                            }
                        }
                        (lat, errors)
                    })
                })
                .collect();
            let mut all = Vec::new();
            let mut errors = 0;
            for t in tasks {
                if let Ok((l, e)) = t.await {
                    all.extend(l);
                    errors += e;
                }
            }
            (all, errors)
        }
    };

    if warmup > 0 {
        let _ = run(Duration::from_secs(warmup)).await;
    }
    let started = Instant::now();
    let (mut lat, errors) = run(Duration::from_secs(secs)).await;
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "requests={} errors={} seconds={:.1} concurrency={} rps={:.0} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        lat.len(),
        errors,
        elapsed,
        conc,
        lat.len() as f64 / elapsed,
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.90)),
        ms(pct(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
    );
}
