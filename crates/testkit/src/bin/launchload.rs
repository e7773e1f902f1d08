//! `launchload`: full LTI 1.3 launch load generator. It plays the platform:
//! serves the test platform's JWKS, and for every launch does
//! `GET /lti/login` (as the LMS would send the browser), mints an RS256
//! id_token carrying the nonce the tool returned (signed with the
//! `coursegate_lti::testing` platform key), and `POST /lti/launch` with the
//! state (and the state cookie, as a first-party browser would). A launch
//! counts when the tool answers 303 to its continue page.
//!
//! It reports launches/s, p50/p99 latency of a whole launch as the platform
//! sees it (login, minting and signing the id_token, launch), p50/p99 of the
//! time spent waiting for the tool's two answers alone (`tool_p50`,
//! `tool_p99`: the same launch without the generator's own signing, which
//! on a real deployment runs on the LMS's machine), and — given the tool's
//! pid — the tool's CPU time per launch (utime + stime from
//! /proc/<pid>/stat). It never asserts anything; docs/benchmarks.md says how
//! to run it.
//!
//! ```text
//! launchload --base http://127.0.0.1:8080 --jwks-bind 127.0.0.1:18081 \
//!            --concurrency 16 --launches 5000 --warmup 300 --pid <tool pid>
//! launchload --serve-jwks-only --jwks-bind 127.0.0.1:18081   # for the registration step
//! ```
//! The tool must have the platform registered: issuer
//! https://platform.test.example, client_id coursegate-test-client,
//! deployment test-deployment-1, JWKS URL http://<jwks-bind>/jwks, and a
//! published course `intro`.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use chrono::{DateTime, Utc};
use coursegate_lti::testing::{self, TokenMinter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LEARNER: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";

struct Args {
    base: String,
    jwks_bind: String,
    concurrency: usize,
    launches: usize,
    warmup: usize,
    pid: Option<u32>,
    learners: usize,
    serve_only: bool,
    label: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: launchload --base URL [--jwks-bind HOST:PORT] [--concurrency N] [--launches N] \
         [--warmup N] [--pid PID] [--learners N] [--label TEXT] | --serve-jwks-only --jwks-bind HOST:PORT"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        base: String::new(),
        jwks_bind: "127.0.0.1:18081".into(),
        concurrency: 1,
        launches: 2000,
        warmup: 200,
        pid: None,
        learners: 1000,
        serve_only: false,
        label: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--base" => a.base = v().trim_end_matches('/').to_string(),
            "--jwks-bind" => a.jwks_bind = v(),
            "--concurrency" | "-c" => a.concurrency = v().parse().unwrap_or_else(|_| usage()),
            "--launches" | "-n" => a.launches = v().parse().unwrap_or_else(|_| usage()),
            "--warmup" => a.warmup = v().parse().unwrap_or_else(|_| usage()),
            "--pid" => a.pid = Some(v().parse().unwrap_or_else(|_| usage())),
            "--learners" => a.learners = v().parse().unwrap_or_else(|_| usage()),
            "--label" => a.label = v(),
            "--serve-jwks-only" => a.serve_only = true,
            _ => usage(),
        }
    }
    if a.base.is_empty() && !a.serve_only {
        usage()
    }
    a.concurrency = a.concurrency.max(1);
    a.learners = a.learners.max(1);
    a
}

/// A minimal HTTP responder for the platform's JWKS (any path).
async fn serve_jwks(bind: String) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let body = testing::platform_jwks().to_string();
    loop {
        let (mut sock, _) = listener.accept().await?;
        let body = body.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let res = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=3600\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(res.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(SystemTime::now())
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)).
    Some((utime + stime) / 100.0)
}

#[derive(Debug)]
enum Failure {
    Login(u16),
    Launch(u16, String),
    Transport(String),
}

/// One launch; its answer is the time spent waiting for the tool (the login
/// request and the launch request, without the minting between them).
async fn one_launch(
    http: &reqwest::Client,
    base: &str,
    learner: usize,
) -> Result<Duration, Failure> {
    let launch_url = format!("{base}/lti/launch");
    let t_login = Instant::now();
    let res = http
        .get(format!("{base}/lti/login"))
        .query(&[
            ("iss", testing::ISSUER),
            ("login_hint", &format!("load-{learner}")),
            ("target_link_uri", &launch_url),
            ("client_id", testing::CLIENT_ID),
            ("lti_deployment_id", testing::DEPLOYMENT_ID),
        ])
        .send()
        .await
        .map_err(|e| Failure::Transport(e.to_string()))?;
    let waited_login = t_login.elapsed();
    if res.status().as_u16() != 302 {
        return Err(Failure::Login(res.status().as_u16()));
    }
    let loc = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url::Url::parse(v).ok())
        .ok_or(Failure::Login(0))?;
    let (mut state, mut nonce) = (String::new(), String::new());
    for (k, v) in loc.query_pairs() {
        match &*k {
            "state" => state = v.into_owned(),
            "nonce" => nonce = v.into_owned(),
            _ => {}
        }
    }
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .to_string();
    let token = TokenMinter::new(now())
        .nonce(&nonce)
        .claim("sub", format!("load-{learner}"))
        .claim(
            "https://purl.imsglobal.org/spec/lti/claim/target_link_uri",
            launch_url.clone(),
        )
        .roles(&[LEARNER])
        .mint();
    let t_launch = Instant::now();
    let res = http
        .post(&launch_url)
        .header("cookie", cookie)
        .form(&[("id_token", token.as_str()), ("state", state.as_str())])
        .send()
        .await
        .map_err(|e| Failure::Transport(e.to_string()))?;
    let waited = waited_login + t_launch.elapsed();
    if res.status().as_u16() != 303 {
        let code = res
            .headers()
            .get("x-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        return Err(Failure::Launch(res.status().as_u16(), code));
    }
    Ok(waited)
}

struct Run {
    ok: usize,
    failures: BTreeMap<String, usize>,
    latencies: Vec<Duration>,
    /// Time spent waiting for the tool, per launch.
    waits: Vec<Duration>,
    elapsed: Duration,
}

async fn run(http: reqwest::Client, args: &Args, total: usize) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let failures = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (http, next, lat, failures) =
            (http.clone(), next.clone(), lat.clone(), failures.clone());
        let base = args.base.clone();
        let learners = args.learners;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t0 = Instant::now();
                match one_launch(&http, &base, i % learners).await {
                    Ok(waited) => lat
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((t0.elapsed(), waited)),
                    Err(f) => {
                        let key = match f {
                            Failure::Login(s) => format!("login HTTP {s}"),
                            Failure::Launch(s, c) => format!("launch HTTP {s} {c}"),
                            Failure::Transport(e) => format!("transport: {e}"),
                        };
                        *failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(key)
                            .or_default() += 1;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    let pairs = std::mem::take(&mut *lat.lock().unwrap_or_else(|p| p.into_inner()));
    let (mut latencies, mut waits): (Vec<Duration>, Vec<Duration>) = pairs.into_iter().unzip();
    latencies.sort_unstable();
    waits.sort_unstable();
    let failures = std::mem::take(&mut *failures.lock().unwrap_or_else(|p| p.into_inner()));
    Run {
        ok: latencies.len(),
        failures,
        latencies,
        waits,
        elapsed,
    }
}

fn pct(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)].as_secs_f64() * 1000.0
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(1)
        });
    rt.block_on(async move {
        let bind = args.jwks_bind.clone();
        let jwks = tokio::spawn(async move {
            if let Err(e) = serve_jwks(bind.clone()).await {
                eprintln!("cannot serve the JWKS on {bind}: {e}");
                std::process::exit(1);
            }
        });
        if args.serve_only {
            let _ = jwks.await;
            return;
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(args.concurrency * 2)
            .build()
            .unwrap_or_else(|e| {
                eprintln!("cannot build the HTTP client: {e}");
                std::process::exit(1)
            });
        if args.warmup > 0 {
            let w = run(http.clone(), &args, args.warmup).await;
            if w.ok == 0 {
                eprintln!("warm-up: no launch succeeded: {:?}", w.failures);
                std::process::exit(1);
            }
        }
        let cpu0 = args.pid.and_then(cpu_secs);
        let r = run(http, &args, args.launches).await;
        let cpu1 = args.pid.and_then(cpu_secs);
        let rate = r.ok as f64 / r.elapsed.as_secs_f64();
        let cpu_ms = match (cpu0, cpu1) {
            (Some(a), Some(b)) if r.ok > 0 => Some((b - a) * 1000.0 / r.ok as f64),
            _ => None,
        };
        println!(
            "{label}c={c} launches={ok} failed={failed} elapsed={el:.2}s rate={rate:.0}/s p50={p50:.2}ms p99={p99:.2}ms tool_p50={tp50:.2}ms tool_p99={tp99:.2}ms tool_cpu_per_launch={cpu}",
            label = if args.label.is_empty() { String::new() } else { format!("{} ", args.label) },
            c = args.concurrency,
            ok = r.ok,
            failed = r.failures.values().sum::<usize>(),
            el = r.elapsed.as_secs_f64(),
            p50 = pct(&r.latencies, 0.50),
            p99 = pct(&r.latencies, 0.99),
            tp50 = pct(&r.waits, 0.50),
            tp99 = pct(&r.waits, 0.99),
            cpu = cpu_ms.map(|c| format!("{c:.3}ms")).unwrap_or_else(|| "n/a".into()),
        );
        for (k, n) in &r.failures {
            println!("  failure: {k} × {n}");
        }
    });
}
