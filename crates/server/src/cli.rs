//! The `coursegate` command line. Every command prints what it did and exits
//! non-zero with a clear message on bad input.

use std::{net::TcpListener, path::PathBuf, process::ExitCode, sync::Arc};

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use coursegate_core::{
    audit::Actor,
    courses::{self, LinkPolicy, NewCourse, NewLesson},
    enrolments::{self, Grant, Source},
    learners,
    tokens::Secret,
    types::{parse_name, Email, Slug},
    Clock, CoreError, Store, SystemClock,
};
use coursegate_store::StoreOptions;

use crate::{app::AppState, config::Config};

#[derive(Debug, Parser)]
#[command(
    name = "coursegate",
    version,
    about = "Gets learners into training courses: LTI 1.3 launches and magic links."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (configuration from coursegate.toml and COURSEGATE_* variables).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create demo courses, a demo learner and a demo staff user on SQLite, print how to get in, and serve.
    Demo,
    /// Courses.
    #[command(subcommand)]
    Course(CourseCmd),
    /// Learners.
    #[command(subcommand)]
    Learner(LearnerCmd),
    /// LMS platform registrations (LTI 1.3).
    #[command(subcommand)]
    Platform(PlatformCmd),
    /// The tool's LTI signing keys in COURSEGATE_KEYS_DIR.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Magic links for learners.
    #[command(subcommand)]
    Link(LinkCmd),
    /// Staff users.
    #[command(subcommand)]
    Staff(StaffCmd),
    /// API keys for the automation API (/api/v1).
    #[command(subcommand)]
    Apikey(ApikeyCmd),
    /// Enrol a learner (created if new) in a course.
    Enrol {
        #[arg(long)]
        email: String,
        #[arg(long)]
        course: String,
        #[arg(long)]
        name: Option<String>,
        /// Start of access: YYYY-MM-DD (UTC midnight) or an RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// End of access (exclusive): YYYY-MM-DD (UTC midnight) or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// A reference such as an order number, shown to the learner.
        #[arg(long)]
        reference: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CourseCmd {
    /// Add a course, with lessons from Markdown files (title = first "# " heading).
    Add {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        summary: String,
        #[arg(long = "lesson")]
        lessons: Vec<PathBuf>,
        /// Create it unpublished (learners cannot open it yet).
        #[arg(long)]
        unpublished: bool,
        #[arg(long)]
        graded: bool,
        /// Default link kind for this course: access (reusable) or once.
        #[arg(long, default_value = "access")]
        link_policy: String,
        /// Default access duration in days for new enrolments.
        #[arg(long)]
        access_days: Option<i32>,
    },
    /// List courses.
    List,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PlatformCmd {
    /// Register an LMS platform (issuer + client_id) with a deployment.
    Add {
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        auth_url: String,
        #[arg(long)]
        token_url: String,
        #[arg(long)]
        jwks_url: String,
        /// A deployment id (repeat for several).
        #[arg(long = "deployment-id")]
        deployment_ids: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        /// Audience for service token requests when it differs from the token URL (Brightspace).
        #[arg(long)]
        audience: Option<String>,
        /// The LMS product (canvas, moodle, brightspace, blackboard, …), for tailored advice.
        #[arg(long)]
        lms: Option<String>,
        /// What to do with unknown deployment ids: reject, or pending (kept for staff approval).
        #[arg(long, default_value = "reject")]
        unknown_deployments: String,
        /// Another audience the platform's id_tokens may name besides our
        /// client_id (repeat for several); such tokens must carry azp = our client_id.
        #[arg(long = "trusted-audience")]
        trusted_audiences: Vec<String>,
    },
    /// List registered platforms and their deployments.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Show the keys and their status.
    List,
    /// Create a first key if there is none.
    Init,
    /// Rotate: next → active, active → retired (still published), new next.
    /// Refused while the next key has been published for less than the
    /// overlap; retired keys past their grace period are deleted.
    Rotate {
        /// Hours the next key must have been published (platforms cache JWKS).
        #[arg(long, default_value_t = coursegate_lti::tool_keys::DEFAULT_OVERLAP_HOURS)]
        overlap_hours: i64,
        /// Rotate now, even if platforms may not have seen the next key yet.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkCmd {
    /// Issue a link for an enrolled learner and print its URL (shown once).
    Issue {
        #[arg(long)]
        email: String,
        /// Course slug; the learner must hold an active enrolment.
        #[arg(long)]
        course: String,
        /// access (reusable course-access link) or once; default: the course's policy.
        #[arg(long)]
        kind: Option<String>,
        /// Also email it (through the outbox; a running server delivers it).
        #[arg(long)]
        send: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StaffCmd {
    /// Create (or find) a staff user and print a one-time staff sign-in link.
    Invite {
        #[arg(long)]
        email: String,
        /// owner, admin, instructor or support
        #[arg(long, default_value = "support")]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// Also email it.
        #[arg(long)]
        send: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCmd {
    /// Create a key and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: read, learners:write, enrolments:write, links:write, webhooks:write.
        #[arg(long)]
        scopes: String,
        /// Let this key receive link URLs from POST /api/v1/links (to send them itself).
        #[arg(long)]
        allow_link_urls: bool,
    },
    /// List keys (prefix, name, scopes, last use).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum LearnerCmd {
    /// Add a learner (or update the name of an existing one).
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(
        &config.database_url,
        StoreOptions {
            pool_size: config.pool_size,
            ..Default::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let applied = store.migrate().map_err(|e| anyhow::anyhow!("{e}"))?;
    for v in &applied {
        tracing::info!(version = %v, "applied migration");
    }
    Ok(store)
}

/// Loads configuration for commands that mint tokens: the secret is required
/// (the demo's persisted secret is used when present, so demo links work).
fn config_for_secret() -> anyhow::Result<Config> {
    let data_dir = std::env::var("COURSEGATE_DATA_DIR").unwrap_or_else(|_| "data".into());
    let demo = std::fs::read(PathBuf::from(&data_dir).join("demo-secret"))
        .ok()
        .and_then(Secret::new);
    Ok(Config::load_from(&crate::config::ProcessEnv, demo)?)
}

/// Loads configuration for commands that never need the secret.
fn config_for_cli() -> anyhow::Result<Config> {
    let fallback = Secret::new(vec![0u8; 32]);
    Ok(Config::load_from(&crate::config::ProcessEnv, fallback)?)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock = SystemClock;
    match cli.command {
        Command::Serve => {
            let config = Config::load()?;
            crate::telemetry::init(config.log_format);
            serve(config).await
        }
        Command::Demo => {
            let config = demo_config()?;
            crate::telemetry::init(config.log_format);
            let store = open_store(&config)?;
            let now = clock.now();
            let urls = crate::demo::seed(&store, &config, now)?;
            println!();
            println!(
                "  Coursegate demo is running on SQLite ({}).",
                config.database_url
            );
            println!();
            println!("  Learner (demo@example.com), course-access link to Workplace Safety:");
            println!("    {}", urls.learner);
            println!();
            println!("  Staff (staff@example.com, owner), one-time sign-in link (10 minutes):");
            println!("    {}", urls.staff);
            println!();
            println!("  Open a link and press Continue. Mail goes to data/mail/*.eml unless COURSEGATE_SMTP_URL is set.");
            println!("  New staff link: coursegate staff invite --email staff@example.com --role owner. Stop with Ctrl+C.");
            println!();
            serve_with(config, store).await
        }
        Command::Migrate => {
            let config = config_for_cli()?;
            let store = Store::connect(&config.database_url, StoreOptions::default())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let applied = store.migrate().map_err(|e| anyhow::anyhow!("{e}"))?;
            if applied.is_empty() {
                println!("Database is up to date ({}).", store.url().redacted());
            } else {
                for v in applied {
                    println!("Applied migration {v}");
                }
            }
            Ok(())
        }
        Command::Course(CourseCmd::Add {
            slug,
            title,
            summary,
            lessons,
            unpublished,
            graded,
            link_policy,
            access_days,
        }) => {
            let slug = Slug::parse(&slug).map_err(cli_err)?;
            let link_policy = LinkPolicy::parse(&link_policy).map_err(cli_err)?;
            let mut new_lessons = Vec::new();
            for (i, path) in lessons.iter().enumerate() {
                let body = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("--lesson {}: cannot read: {e}", path.display())
                })?;
                new_lessons.push(NewLesson::from_markdown(
                    &body,
                    &format!("Lesson {}", i + 1),
                ));
            }
            let config = config_for_cli()?;
            let store = open_store(&config)?;
            let now = clock.now();
            let (course, lessons) = store
                .write_blocking(|tx| {
                    courses::create(
                        tx,
                        now,
                        NewCourse {
                            slug,
                            title,
                            summary,
                            published: !unpublished,
                            graded,
                            link_policy,
                            default_access_days: access_days,
                            lessons: new_lessons,
                        },
                    )
                })
                .map_err(cli_err)?;
            println!(
                "Created course {} \"{}\" ({}) with {} lesson(s).",
                course.slug,
                course.title,
                if course.published {
                    "published"
                } else {
                    "unpublished"
                },
                lessons.len()
            );
            Ok(())
        }
        Command::Platform(PlatformCmd::Add {
            issuer,
            client_id,
            auth_url,
            token_url,
            jwks_url,
            deployment_ids,
            name,
            audience,
            lms,
            unknown_deployments,
            trusted_audiences,
        }) => {
            let policy = coursegate_core::lti::DeploymentPolicy::parse(&unknown_deployments)
                .map_err(cli_err)?;
            let config = config_for_cli()?;
            let store = open_store(&config)?;
            let now = clock.now();
            let (p, deps) = store
                .write_blocking(|tx| {
                    coursegate_core::lti::add_platform(
                        tx,
                        now,
                        coursegate_core::lti::NewPlatform {
                            issuer,
                            client_id,
                            name,
                            auth_url,
                            token_url,
                            jwks_url,
                            audience,
                            customer: None,
                            lms,
                            unknown_deployments: policy,
                            deployment_ids,
                            trusted_audiences,
                        },
                    )
                })
                .map_err(cli_err)?;
            println!(
                "Registered platform {} ({}) issuer {} client_id {}",
                p.name, p.id, p.issuer, p.client_id
            );
            for d in &deps {
                println!("  deployment {}", d.deployment_id);
            }
            for a in coursegate_core::lti::trusted_audiences(&p) {
                println!("  trusted audience {a}");
            }
            println!();
            println!("Values for the LMS administrator:");
            println!("  Login initiation URL:  {}", config.url("/lti/login"));
            println!("  Redirect / launch URL: {}", config.url("/lti/launch"));
            println!("  Deep Linking URL:      {}", config.url("/lti/launch"));
            println!(
                "  Public keyset (JWKS):  {}",
                config.url("/.well-known/jwks.json")
            );
            Ok(())
        }
        Command::Platform(PlatformCmd::List) => {
            let config = config_for_cli()?;
            let store = open_store(&config)?;
            let rows = store
                .read_blocking(|tx| {
                    let mut out = Vec::new();
                    for p in coursegate_store::repo::lti::list_platforms(tx)? {
                        let d = coursegate_store::repo::lti::deployments_of(tx, &p.id)?;
                        out.push((p, d));
                    }
                    Ok::<_, CoreError>(out)
                })
                .map_err(cli_err)?;
            if rows.is_empty() {
                println!("No platforms yet. Register one with: coursegate platform add --issuer … --client-id … --auth-url … --token-url … --jwks-url … --deployment-id …");
            }
            for (p, deps) in rows {
                println!(
                    "{}\t{}\t{}\t{}",
                    p.name,
                    p.issuer,
                    p.client_id,
                    if p.active { "active" } else { "disabled" }
                );
                for d in deps {
                    println!("  deployment {} ({})", d.deployment_id, d.status);
                }
                for a in coursegate_core::lti::trusted_audiences(&p) {
                    println!("  trusted audience {a}");
                }
            }
            Ok(())
        }
        Command::Keys(cmd) => {
            let config = config_for_cli()?;
            let dir = &config.keys_dir;
            let now = clock.now();
            match cmd {
                KeysCmd::Init => {
                    let k = coursegate_lti::tool_keys::ToolKeys::load_or_generate(dir, now)?;
                    println!("Active key {} in {}", k.active_kid()?, dir.display());
                }
                KeysCmd::Rotate {
                    overlap_hours,
                    force,
                } => {
                    use coursegate_lti::tool_keys::{ToolKeys, DEFAULT_RETIRED_GRACE_DAYS};
                    if !(0..=24 * 365).contains(&overlap_hours) {
                        anyhow::bail!("--overlap-hours: must be between 0 and 8760");
                    }
                    let overlap = if force {
                        chrono::Duration::zero()
                    } else {
                        chrono::Duration::hours(overlap_hours)
                    };
                    let r = ToolKeys::rotate_after_overlap(dir, now, overlap).map_err(|e| {
                        anyhow::anyhow!("{e} (`coursegate keys rotate --force` rotates now)")
                    })?;
                    for kid in ToolKeys::prune(
                        dir,
                        now,
                        chrono::Duration::days(DEFAULT_RETIRED_GRACE_DAYS),
                    )? {
                        println!("Deleted {kid} (retired more than {DEFAULT_RETIRED_GRACE_DAYS} days ago)");
                    }
                    println!(
                        "Activated {}; next {}{}",
                        r.activated,
                        r.next,
                        r.retired
                            .map(|k| format!("; retired {k} (still published)"))
                            .unwrap_or_default()
                    );
                    println!("Running instances pick the new keys up within 5 minutes.");
                }
                KeysCmd::List => {
                    for (kid, status) in coursegate_lti::tool_keys::describe(dir, now)? {
                        println!("{kid}\t{status:?}");
                    }
                }
            }
            Ok(())
        }
        Command::Link(LinkCmd::Issue {
            email,
            course,
            kind,
            send,
        }) => {
            let email = Email::parse(&email).map_err(cli_err)?;
            let kind = kind
                .as_deref()
                .map(LinkPolicy::parse)
                .transpose()
                .map_err(cli_err)?;
            let config = config_for_secret()?;
            let store = open_store(&config)?;
            let now = clock.now();
            let (secret, settings, base) = (config.secret.clone(), config.links, config.url(""));
            let issued = store
                .write_blocking(|tx| {
                    let l = coursegate_store::repo::learners::find_by_email(tx, &email.lower())?
                        .ok_or(CoreError::NotFound("learner"))?;
                    coursegate_core::links::issue_learner(
                        tx,
                        now,
                        &secret,
                        &settings,
                        &Actor::cli(),
                        coursegate_core::links::IssueLearner {
                            learner_id: l.id,
                            destination: coursegate_core::sessions::Destination::Course {
                                slug: course.clone(),
                            },
                            kind,
                            send: send.then(|| coursegate_core::links::SendOptions {
                                base_url: base.clone(),
                                reference: None,
                                code_for_browser: None,
                            }),
                        },
                    )
                })
                .map_err(cli_err)?;
            println!("{}", config.url(&issued.path()));
            eprintln!(
                "{} link for {} to {}, valid until {} UTC{}.",
                if issued.link.kind == "access" {
                    "Course-access"
                } else {
                    "One-time"
                },
                email.as_str(),
                course,
                issued.link.expires_at.format("%Y-%m-%d %H:%M"),
                if send { "; queued for email" } else { "" }
            );
            Ok(())
        }
        Command::Staff(StaffCmd::Invite {
            email,
            role,
            name,
            send,
        }) => {
            let email = Email::parse(&email).map_err(cli_err)?;
            let role = coursegate_core::staff::Role::parse(&role).map_err(cli_err)?;
            let config = config_for_secret()?;
            let store = open_store(&config)?;
            let now = clock.now();
            let (secret, settings, base) = (config.secret.clone(), config.links, config.url(""));
            let issued = store
                .write_blocking(|tx| {
                    let (s, _) =
                        coursegate_core::staff::ensure(tx, now, &email, name.as_deref(), role)?;
                    coursegate_core::links::issue_staff(
                        tx,
                        now,
                        &secret,
                        &settings,
                        &Actor::cli(),
                        &s.id,
                        send.then_some(base.as_str()),
                    )
                })
                .map_err(cli_err)?;
            println!("{}", config.url(&issued.path()));
            eprintln!(
                "One-time staff sign-in link for {}; it works once, for {} minutes.",
                email.as_str(),
                config.links.staff_ttl.num_minutes()
            );
            Ok(())
        }
        Command::Apikey(cmd) => apikey(cmd, clock.now()),
        Command::Course(CourseCmd::List) => {
            let config = config_for_cli()?;
            let store = open_store(&config)?;
            let list = store.read_blocking(courses::list).map_err(cli_err)?;
            if list.is_empty() {
                println!("No courses yet. Add one with: coursegate course add --slug SLUG --title TITLE --lesson lesson1.md");
            }
            for (c, n) in list {
                println!(
                    "{}\t{}\t{} lesson(s)\t{}",
                    c.slug,
                    c.title,
                    n,
                    if c.published {
                        "published"
                    } else {
                        "unpublished"
                    }
                );
            }
            Ok(())
        }
        Command::Learner(LearnerCmd::Add { email, name }) => {
            let email = Email::parse(&email).map_err(cli_err)?;
            let name = parse_name("name", name.as_deref()).map_err(cli_err)?;
            let config = config_for_cli()?;
            let store = open_store(&config)?;
            let now = clock.now();
            let up = store
                .write_blocking(|tx| {
                    let up =
                        learners::upsert_by_email(tx, now, &email, name.as_deref(), None, true)?;
                    coursegate_core::audit::record(
                        tx,
                        now,
                        &Actor::cli(),
                        if up.created {
                            "learner.created"
                        } else {
                            "learner.updated"
                        },
                        Some(("learner", &up.learner.id)),
                        serde_json::json!({}),
                    )?;
                    Ok::<_, CoreError>(up)
                })
                .map_err(cli_err)?;
            println!(
                "{} learner {} ({})",
                if up.created { "Created" } else { "Updated" },
                email.as_str(),
                up.learner.id
            );
            Ok(())
        }
        Command::Enrol {
            email,
            course,
            name,
            from,
            until,
            reference,
        } => {
            let email = Email::parse(&email).map_err(cli_err)?;
            let name = parse_name("name", name.as_deref()).map_err(cli_err)?;
            let starts_at = from
                .as_deref()
                .map(|s| parse_date("--from", s))
                .transpose()?;
            let expires_at = until
                .as_deref()
                .map(|s| parse_date("--until", s))
                .transpose()?;
            let config = config_for_cli()?;
            let store = open_store(&config)?;
            let now = clock.now();
            let (g, slug) = store
                .write_blocking(|tx| {
                    let c = courses::by_slug(tx, &course)?;
                    let up =
                        learners::upsert_by_email(tx, now, &email, name.as_deref(), None, false)?;
                    let g = enrolments::grant(
                        tx,
                        now,
                        Grant {
                            learner_id: up.learner.id.clone(),
                            course_id: c.id.clone(),
                            source: Source::Cli,
                            source_ref: reference.clone(),
                            starts_at,
                            expires_at,
                        },
                    )?;
                    coursegate_core::audit::record(
                        tx,
                        now,
                        &Actor::cli(),
                        "enrolment.granted",
                        Some(("enrolment", &g.enrolment.id)),
                        serde_json::json!({ "course": c.slug }),
                    )?;
                    Ok::<_, CoreError>((g, c.slug))
                })
                .map_err(cli_err)?;
            let e = &g.enrolment;
            let window = match (e.starts_at, e.expires_at) {
                (None, None) => "with no end date".to_string(),
                (s, x) => format!(
                    "from {} until {}",
                    s.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_else(|| "now".into()),
                    x.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_else(|| "no end".into())
                ),
            };
            println!(
                "{} {} in {} {} (enrolment {})",
                if g.created {
                    "Enrolled"
                } else if g.changed {
                    "Updated enrolment of"
                } else {
                    "Already enrolled:"
                },
                email.as_str(),
                slug,
                window,
                e.id
            );
            Ok(())
        }
    }
}

fn apikey(cmd: ApikeyCmd, now: DateTime<Utc>) -> anyhow::Result<()> {
    use coursegate_core::api_keys::{self, NewKey, Scope};
    let config = Config::load()?;
    let store = open_store(&config)?;
    match cmd {
        ApikeyCmd::Create {
            name,
            scopes,
            allow_link_urls,
        } => {
            let scopes = Scope::parse_list(&scopes).map_err(cli_err)?;
            let secret = config.secret.clone();
            let created = store
                .write_blocking(|tx| {
                    api_keys::create(
                        tx,
                        now,
                        &secret,
                        &Actor::cli(),
                        NewKey {
                            name,
                            scopes,
                            allow_link_urls,
                        },
                    )
                })
                .map_err(cli_err)?;
            println!(
                "Created API key {} \"{}\" with scopes {}.",
                created.key.id,
                created.key.name,
                created.key.scopes.replace(' ', ", ")
            );
            println!();
            println!("  {}", created.plaintext);
            println!();
            println!(
                "Store it now: it is shown only once. Send it as `Authorization: Bearer <key>`."
            );
        }
        ApikeyCmd::List => {
            let keys = store.read_blocking(api_keys::list).map_err(cli_err)?;
            if keys.is_empty() {
                println!("No API keys yet. Create one with: coursegate apikey create --name NAME --scopes read,enrolments:write");
            }
            for k in keys {
                println!(
                    "{}\t{}…\t{}\t{}\t{}",
                    k.id,
                    k.prefix,
                    k.name,
                    k.scopes.replace(' ', ","),
                    match (k.revoked_at, k.last_used_at) {
                        (Some(r), _) => format!("revoked {}", r.format("%Y-%m-%d %H:%M UTC")),
                        (None, Some(u)) => format!("last used {}", u.format("%Y-%m-%d %H:%M UTC")),
                        (None, None) => "never used".into(),
                    }
                );
            }
        }
        ApikeyCmd::Revoke { id } => {
            let k = store
                .write_blocking(|tx| api_keys::revoke(tx, now, &Actor::cli(), &id))
                .map_err(cli_err)?;
            println!("Revoked API key {} \"{}\".", k.id, k.name);
        }
    }
    Ok(())
}

fn cli_err(e: CoreError) -> anyhow::Error {
    match e {
        CoreError::Invalid { field, message } => {
            anyhow::anyhow!("--{}: {message}", field.replace('_', "-"))
        }
        CoreError::NotFound(what) => anyhow::anyhow!("{what} not found"),
        other => anyhow::anyhow!("{other}"),
    }
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339.
pub fn parse_date(flag: &str, s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| anyhow::anyhow!("{flag}: expected YYYY-MM-DD or an RFC 3339 time such as 2026-09-01T09:00:00Z, got {s:?}"))
}

/// Demo mode: SQLite under data/, a persisted random secret, dev sign-in on.
fn demo_config() -> anyhow::Result<Config> {
    let data_dir = std::env::var("COURSEGATE_DATA_DIR").unwrap_or_else(|_| "data".into());
    std::fs::create_dir_all(&data_dir)?;
    let secret_path = PathBuf::from(&data_dir).join("demo-secret");
    let secret = match std::fs::read(&secret_path) {
        Ok(b) if b.len() >= 32 => b,
        _ => {
            let b = coursegate_core::tokens::mint("demo").into_bytes();
            std::fs::write(&secret_path, &b)?;
            b
        }
    };
    let mut config = Config::load_from(&crate::config::ProcessEnv, Secret::new(secret))?;
    config.dev_signin = true;
    Ok(config)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config)?;
    serve_with(config, store).await
}

async fn serve_with(config: Config, store: Store) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&config.bind)
        .map_err(|e| anyhow::anyhow!("COURSEGATE_BIND {}: {e}", config.bind))?;
    let workers = config.workers;
    tracing::info!(
        bind = %config.bind,
        base_url = %config.base_url,
        database = store.backend().name(),
        "coursegate listening"
    );
    let state = AppState::new(store, Arc::new(SystemClock), config);
    let data = actix_web::web::Data::new(state);
    let _maintenance =
        crate::workers::spawn_maintenance(data.clone(), std::time::Duration::from_secs(300));
    if data.config.outbox_workers {
        let mail_config = coursegate_mail::MailConfig::from_url(data.config.smtp_url.as_deref())
            .map_err(|e| anyhow::anyhow!("COURSEGATE_SMTP_URL: {e}"))?
            .with_from(data.config.mail_from.clone());
        let mail_config = match &data.config.dkim {
            Some(dkim) => mail_config.with_dkim(dkim.clone()),
            None => mail_config,
        };
        let mail_config = if mail_config.is_dev_file_transport() {
            let dir = data.config.data_dir.join("mail");
            tracing::warn!(
                dir = %dir.display(),
                "NO SMTP CONFIGURED: emails are written as .eml files under this directory and NOT SENT. Development only; set COURSEGATE_SMTP_URL."
            );
            mail_config.with_file_dir(dir)
        } else {
            mail_config
        };
        let mailer =
            coursegate_mail::Mailer::new(&mail_config).map_err(|e| anyhow::anyhow!("mail: {e}"))?;
        let worker = crate::workers::MailWorker::new(mailer, &data.config.mail_from)
            .map_err(|e| anyhow::anyhow!("mail templates: {e}"))?;
        let _mail = crate::workers::spawn_mail_worker(
            data.clone(),
            worker,
            std::time::Duration::from_secs(data.config.mail_poll_secs),
        );
    }
    let _scores = data.config.outbox_workers.then(|| {
        crate::workers::spawn_score_worker(
            data.clone(),
            crate::workers::ScoreWorker::default(),
            std::time::Duration::from_secs(data.config.mail_poll_secs),
        )
    });
    let _webhooks = data.config.outbox_workers.then(|| {
        crate::workers::spawn_webhooks(data.clone(), crate::workers::WebhookWorker::default())
    });
    let running = crate::app::start_with_data(data, listener, workers)?;
    running.task.await??;
    tracing::info!("coursegate stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(
            super::parse_date("--from", "2026-09-01")
                .unwrap()
                .to_rfc3339(),
            "2026-09-01T00:00:00+00:00"
        );
        assert!(super::parse_date("--from", "2026-09-01T09:00:00Z").is_ok());
        let e = super::parse_date("--until", "tomorrow")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--until:"), "{e}");
    }
}
