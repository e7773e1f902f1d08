//! Load tool for the link door (docs/benchmarks.md): each of `c` workers is a
//! browser with its own cookie jar that repeatedly opens a course-access link
//! (GET: the confirmation page) and presses Continue (POST: redemption, a new
//! session, 303). One iteration = one redemption; reports redemptions/s and
//! the latency of GET + POST together.
//!
//! `linkload --url http://127.0.0.1:18092/l/cgl_… [-c 16] [-d 10] [--warmup 2]`

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

fn csrf_of(page: &str) -> Option<String> {
    let k = "name=\"csrf\" value=\"";
    let i = page.find(k)? + k.len();
    Some(page[i..i + page[i..].find('"')?].to_string())
}

async fn once(c: &reqwest::Client, url: &str) -> Result<(), String> {
    let page = c.get(url).send().await.map_err(|e| e.to_string())?;
    if page.status() != 200 {
        return Err(format!("GET {}", page.status()));
    }
    let body = page.text().await.map_err(|e| e.to_string())?;
    let csrf = csrf_of(&body).ok_or("no csrf field")?;
    let r = c
        .post(url)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 303 {
        return Err(format!("POST {}", r.status()));
    }
    Ok(())
}

async fn run(url: &str, c: usize, secs: u64) -> (Vec<Duration>, usize, Duration) {
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..c {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .user_agent("Mozilla/5.0 linkload")
                .default_headers(
                    [(
                        reqwest::header::ACCEPT_LANGUAGE,
                        reqwest::header::HeaderValue::from_static("en"),
                    )]
                    .into_iter()
                    .collect(),
                )
                .build()
                .unwrap_or_default();
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < until {
                let t = Instant::now();
                match once(&client, &url).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        if errors < 3 {
                            eprintln!("error: {e}");
                        }
                    }
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    (all, errors, start.elapsed())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = arg(&args, &["--url", "-u"]) else {
        eprintln!(
            "usage: linkload --url LINK_URL [-c CONCURRENCY] [-d SECONDS] [--warmup SECONDS]"
        );
        std::process::exit(2);
    };
    let c: usize = arg(&args, &["-c"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let d: u64 = arg(&args, &["-d"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let w: u64 = arg(&args, &["--warmup"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    if w > 0 {
        run(&url, c, w).await;
    }
    let (mut lat, errors, took) = run(&url, c, d).await;
    lat.sort();
    let n = lat.len();
    println!(
        "redemptions={n} errors={errors} secs={:.1} redemptions/s={:.0} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms (GET page + POST Continue, concurrency {c})",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.9).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}
