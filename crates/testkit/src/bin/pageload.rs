//! `pageload`: the load tool behind docs/benchmarks.md for the learner hot
//! path — session lookup and page render (the dashboard by default).
//!
//! It seeds a benchmark course and N enrolled learners through the core
//! services (idempotent), starts one session per learner, then keeps
//! `--concurrency` keep-alive connections busy for `--duration` seconds, each
//! as its own learner, with a minimal HTTP/1.1 client (so the generator,
//! which shares the machine's cores with the server, spends little CPU).
//! Reports requests/s, latency percentiles and, with `--pid`, the server's
//! resident memory from /proc/PID/status.
//!
//! ```text
//! pageload --url http://127.0.0.1:18080 --database-url sqlite://bench/cg.db \
//!          --secret-file bench/secret [--path /] [-c 16] [-d 10] [--warmup 2] [--pid PID]
//! ```
//! The server must run with the same database and `COURSEGATE_SECRET`.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use coursegate_core::{
    courses::{self, LinkPolicy, NewCourse, NewLesson},
    enrolments::{self, Grant, Source},
    learners::{self, IdentityRef},
    sessions::{self, Destination, SessionPolicy, StartLearner},
    tokens::Secret,
    types::{Email, Slug},
    Clock, CoreError, Store, SystemClock,
};
use coursegate_store::{repo, StoreOptions};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

struct Args {
    url: String,
    path: String,
    database_url: String,
    secret: Vec<u8>,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    pid: Option<u32>,
}

fn usage() -> String {
    "usage: pageload --url http://HOST:PORT --database-url URL (--secret S | --secret-file F) \
     [--path /] [-c 16] [-d 10] [--warmup 2] [--pid PID]"
        .to_string()
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let get = |names: &[&str]| -> Option<String> {
        raw.windows(2)
            .find(|w| names.contains(&w[0].as_str()))
            .map(|w| w[1].clone())
    };
    let num = |names: &[&str], default: u64| -> Result<u64, String> {
        match get(names) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{}: expected a whole number, got {v:?}", names[0])),
        }
    };
    let secret = match (get(&["--secret"]), get(&["--secret-file"])) {
        (Some(s), _) => s.into_bytes(),
        (None, Some(f)) => std::fs::read_to_string(&f)
            .map_err(|e| format!("--secret-file {f}: {e}"))?
            .trim_end()
            .as_bytes()
            .to_vec(),
        (None, None) => return Err(usage()),
    };
    Ok(Args {
        url: get(&["--url"]).ok_or_else(usage)?,
        path: get(&["--path"]).unwrap_or_else(|| "/".into()),
        database_url: get(&["--database-url"]).ok_or_else(usage)?,
        secret,
        concurrency: usize::try_from(num(&["-c", "--concurrency"], 16)?.max(1)).unwrap_or(16),
        duration: Duration::from_secs(num(&["-d", "--duration"], 10)?.max(1)),
        warmup: Duration::from_secs(num(&["--warmup"], 2)?),
        pid: get(&["--pid"]).and_then(|p| p.parse().ok()),
    })
}

/// Seeds the benchmark course and learners; returns one session token per learner.
fn seed(args: &Args) -> Result<Vec<String>, String> {
    let store = Store::connect(&args.database_url, StoreOptions::default())
        .map_err(|e| format!("--database-url: {e}"))?;
    store.migrate().map_err(|e| e.to_string())?;
    let secret = Secret::new(args.secret.clone())
        .ok_or("the secret must be at least 32 bytes (the server's COURSEGATE_SECRET)")?;
    let now = SystemClock.now();
    let n = args.concurrency;
    store
        .write_blocking(|tx| {
            let mut courses_ = Vec::new();
            for (slug, title, lessons) in [
                ("bench-safety", "Benchmark: Workplace Safety", 5),
                ("bench-privacy", "Benchmark: Data Protection", 3),
            ] {
                let c = match repo::courses::get_by_slug(tx, slug)? {
                    Some(c) => c,
                    None => {
                        courses::create(
                            tx,
                            now,
                            NewCourse {
                                slug: Slug::parse(slug)?,
                                title: title.into(),
                                summary: "A course for the benchmark.".into(),
                                published: true,
                                graded: false,
                                link_policy: LinkPolicy::Access,
                                default_access_days: None,
                                lessons: (1..=lessons)
                                    .map(|i| {
                                        NewLesson::from_markdown(
                                            &format!("# Part {i}\n\nSome **text** for part {i}."),
                                            "Part",
                                        )
                                    })
                                    .collect(),
                            },
                        )?
                        .0
                    }
                };
                courses_.push(c);
            }
            let mut tokens = Vec::with_capacity(n);
            for i in 0..n {
                let email = Email::parse(&format!("bench-{i}@example.com"))?;
                let l =
                    learners::upsert_by_email(tx, now, &email, Some("Bench Learner"), None, false)?
                        .learner;
                for c in &courses_ {
                    if repo::enrolments::find(tx, &l.id, &c.id)?.is_none() {
                        enrolments::grant(
                            tx,
                            now,
                            Grant {
                                learner_id: l.id.clone(),
                                course_id: c.id.clone(),
                                source: Source::Staff,
                                source_ref: None,
                                starts_at: None,
                                expires_at: None,
                            },
                        )?;
                    }
                }
                let s = sessions::start_learner_session(
                    tx,
                    now,
                    &secret,
                    &SessionPolicy::default(),
                    StartLearner {
                        identity: IdentityRef::Learner { learner_id: l.id },
                        destination: Destination::Dashboard,
                        via: "bench".into(),
                        client: Default::default(),
                    },
                )?;
                tokens.push(s.token);
            }
            Ok::<_, CoreError>(tokens)
        })
        .map_err(|e| format!("seeding: {e}"))
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    bytes: u64,
    latencies_us: Vec<u32>,
}

/// Reads one response; returns (status, total bytes).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, usize)> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head =
        std::str::from_utf8(&buf[..header_end]).map_err(|_| std::io::ErrorKind::InvalidData)?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let total = header_end + length;
    while buf.len() < total {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, total))
}

async fn connection(addr: String, request: Vec<u8>, until: Instant, record: bool) -> Tally {
    let mut t = Tally::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut stream: Option<TcpStream> = None;
    while Instant::now() < until {
        if stream.is_none() {
            match TcpStream::connect(&addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                Err(_) => {
                    t.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let start = Instant::now();
        let result = match s.write_all(&request).await {
            Ok(()) => read_response(s, &mut buf).await,
            Err(e) => Err(e),
        };
        let us = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        match result {
            Ok((200, n)) => {
                t.ok += 1;
                t.bytes += n as u64;
                if record {
                    t.latencies_us.push(us);
                }
            }
            Ok(_) => t.errors += 1,
            Err(_) => {
                t.errors += 1;
                stream = None;
            }
        }
    }
    t
}

async fn run(
    addr: &str,
    host: &str,
    path: &str,
    tokens: &[String],
    d: Duration,
    record: bool,
) -> Tally {
    let until = Instant::now() + d;
    let tasks: Vec<_> = tokens
        .iter()
        .map(|tok| {
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pageload\r\nCookie: cg_session={tok}\r\n\r\n"
            )
            .into_bytes();
            tokio::spawn(connection(addr.to_string(), req, until, record))
        })
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.ok += t.ok;
            all.errors += t.errors;
            all.bytes += t.bytes;
            all.latencies_us.extend(t.latencies_us);
        }
    }
    all
}

fn memory(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!("VmRSS {} · VmHWM {}", field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(hostport) = args
        .url
        .strip_prefix("http://")
        .map(|r| r.trim_end_matches('/').to_string())
    else {
        eprintln!("--url: only http://HOST:PORT is supported");
        return ExitCode::from(2);
    };
    let tokens = match seed(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(pid) = args.pid {
        println!("server memory before load: {}", memory(pid));
    }
    let result = rt.block_on(async {
        if !args.warmup.is_zero() {
            run(
                &hostport,
                &hostport,
                &args.path,
                &tokens,
                args.warmup,
                false,
            )
            .await;
        }
        let start = Instant::now();
        let t = run(
            &hostport,
            &hostport,
            &args.path,
            &tokens,
            args.duration,
            true,
        )
        .await;
        (t, start.elapsed())
    });
    let (mut t, elapsed) = result;
    t.latencies_us.sort_unstable();
    let secs = elapsed.as_secs_f64();
    println!(
        "GET {} · concurrency {} · {:.1} s · {} ok · {} errors",
        args.path, args.concurrency, secs, t.ok, t.errors
    );
    println!(
        "requests/s {:.0} · p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms · max {:.2} ms · {:.0} bytes/response",
        t.ok as f64 / secs,
        percentile(&t.latencies_us, 50.0),
        percentile(&t.latencies_us, 90.0),
        percentile(&t.latencies_us, 99.0),
        percentile(&t.latencies_us, 100.0),
        if t.ok > 0 { t.bytes as f64 / t.ok as f64 } else { 0.0 },
    );
    if let Some(pid) = args.pid {
        println!("server memory after load: {}", memory(pid));
    }
    if t.ok == 0 || t.errors > 0 {
        eprintln!("there were errors (or no successful request): check the server and the secret");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
