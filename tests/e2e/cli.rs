//! The built `coursegate` binary: commands print what they did, and bad
//! input exits non-zero with a message naming the flag or setting.

use std::{path::Path, process::Output};

use coursegate_store::{repo, Store, StoreOptions};
use coursegate_testkit::{each_backend, TestBackend};

/// A scratch directory and database for CLI runs; drops its PostgreSQL schema.
struct Cli {
    dir: tempfile::TempDir,
    db_url: String,
    store: Store,
    pg: bool,
}

impl Drop for Cli {
    fn drop(&mut self) {
        if self.pg {
            let _ = self.store.drop_pg_schema();
        }
    }
}

impl Cli {
    fn new(backend: &TestBackend) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let (db_url, store_url, schema) = match backend {
            TestBackend::Sqlite => {
                let u = format!("sqlite://{}/cli.db", dir.path().display());
                (u.clone(), u, None)
            }
            TestBackend::Postgres(url) => {
                // The binary reaches its own schema through libpq's `options`.
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let sep = if url.contains('?') { '&' } else { '?' };
                (
                    format!("{url}{sep}options=-csearch_path%3D{schema}"),
                    url.clone(),
                    Some(schema),
                )
            }
        };
        let pg = schema.is_some();
        let store = Store::connect(
            &store_url,
            StoreOptions {
                pg_schema: schema,
                pool_size: 1,
                ..Default::default()
            },
        )
        .unwrap();
        Cli {
            dir,
            db_url,
            store,
            pg,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        run_with(
            self.dir.path(),
            &[("COURSEGATE_DATABASE_URL", &self.db_url)],
            args,
        )
    }
}

/// Runs the binary with a clean environment in `cwd`.
fn run_with(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_coursegate"));
    cmd.env_clear().current_dir(cwd).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts a non-zero exit whose message names `needle`; returns stderr.
#[track_caller]
fn assert_fails_naming(o: &Output, needle: &str) -> String {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected a failure naming {needle}, got success: {}",
        stdout(o)
    );
    assert!(err.contains(needle), "the message names {needle}: {err}");
    assert!(!err.contains("panicked"), "a message, not a panic: {err}");
    err
}

each_backend! {
    async fn course_add_list_learner_add_and_enrol(backend) {
        let cli = Cli::new(&backend);
        std::fs::write(cli.path("intro.md"), "# Welcome to first aid\n\nStay calm.\n").unwrap();
        std::fs::write(cli.path("cpr.md"), "# CPR\n\n30 compressions, 2 breaths.\n").unwrap();

        let out = assert_ok(&cli.run(&[
            "course", "add", "--slug", "first-aid", "--title", "First Aid",
            "--lesson", &cli.path("intro.md"), "--lesson", &cli.path("cpr.md"),
        ]));
        assert!(out.contains("Created course first-aid \"First Aid\" (published) with 2 lesson(s)."), "{out}");
        assert_ok(&cli.run(&["course", "add", "--slug", "draft-course", "--title", "Draft", "--unpublished"]));

        let out = assert_ok(&cli.run(&["course", "list"]));
        assert!(out.contains("first-aid\tFirst Aid\t2 lesson(s)\tpublished"), "{out}");
        assert!(out.contains("draft-course\tDraft\t0 lesson(s)\tunpublished"), "{out}");

        // The lessons are stored in order with their titles from the Markdown.
        let store = cli.store.clone();
        let titles = tokio::task::spawn_blocking(move || {
            store.read_blocking(|tx| {
                let c = repo::courses::get_by_slug(tx, "first-aid")?.unwrap();
                repo::courses::lessons_of(tx, &c.id)
            })
        })
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|l| l.title)
        .collect::<Vec<_>>();
        assert_eq!(titles, ["Welcome to first aid", "CPR"]);

        let out = assert_ok(&cli.run(&["learner", "add", "--email", "Ann@Example.com", "--name", "Ann"]));
        assert!(out.starts_with("Created learner Ann@Example.com"), "{out}");
        let out = assert_ok(&cli.run(&["learner", "add", "--email", "ann@example.com", "--name", "Ann B"]));
        assert!(out.starts_with("Updated learner"), "{out}");

        assert_ok(&cli.run(&[
            "enrol", "--email", "ann@example.com", "--course", "first-aid",
            "--from", "2026-01-01", "--until", "2036-01-01",
        ]));
        let store = cli.store.clone();
        let granted = tokio::task::spawn_blocking(move || {
            store.read_blocking(|tx| repo::outbox::by_topic(tx, "enrolment.granted"))
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(granted.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&granted[0].payload).unwrap();
        assert_eq!(v["data"]["course"], "first-aid");
        assert_eq!(v["data"]["source"], "cli");

        // A duplicate slug and an unknown course are refused.
        let o = cli.run(&["course", "add", "--slug", "first-aid", "--title", "Again"]);
        assert_fails_naming(&o, "already exists");
        let o = cli.run(&["enrol", "--email", "ann@example.com", "--course", "nope"]);
        assert_fails_naming(&o, "course not found");
    }
}

#[test]
fn bad_flags_are_named() {
    let cli = Cli::new(&TestBackend::Sqlite);
    assert_fails_naming(
        &cli.run(&["learner", "add", "--email", "not-an-email"]),
        "--email",
    );
    assert_fails_naming(
        &cli.run(&[
            "enrol",
            "--email",
            "ann@example.com",
            "--course",
            "x",
            "--until",
            "tomorrow",
        ]),
        "--until",
    );
    assert_fails_naming(
        &cli.run(&[
            "enrol",
            "--email",
            "ann@example.com",
            "--course",
            "x",
            "--from",
            "soon",
        ]),
        "--from",
    );
    assert_fails_naming(
        &cli.run(&["course", "add", "--slug", "Bad Slug!", "--title", "T"]),
        "--slug",
    );
    assert_fails_naming(
        &cli.run(&[
            "course",
            "add",
            "--slug",
            "ok",
            "--title",
            "T",
            "--lesson",
            "/no/such/file.md",
        ]),
        "--lesson",
    );
    assert_fails_naming(
        &cli.run(&["course", "add", "--slug", "ok", "--title", "  "]),
        "--title",
    );
    // Usage errors come from the argument parser, also non-zero.
    assert_fails_naming(&cli.run(&["enrol", "--email", "a@example.com"]), "--course");
}

#[test]
fn bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_with(
        dir.path(),
        &[("COURSEGATE_DATABASE_URL", "mysql://x")],
        &["course", "list"],
    );
    assert_fails_naming(&o, "COURSEGATE_DATABASE_URL");
    let o = run_with(
        dir.path(),
        &[("COURSEGATE_DATABASE_URL", "mysql://x")],
        &["migrate"],
    );
    assert_fails_naming(&o, "COURSEGATE_DATABASE_URL");
    // `serve` needs a secret of at least 32 bytes and a valid base URL.
    let db = format!("sqlite://{}/s.db", dir.path().display());
    let o = run_with(dir.path(), &[("COURSEGATE_DATABASE_URL", &db)], &["serve"]);
    assert_fails_naming(&o, "COURSEGATE_SECRET");
    let o = run_with(
        dir.path(),
        &[
            ("COURSEGATE_DATABASE_URL", &db),
            ("COURSEGATE_SECRET", "short"),
        ],
        &["serve"],
    );
    assert_fails_naming(&o, "COURSEGATE_SECRET");
    let o = run_with(
        dir.path(),
        &[
            ("COURSEGATE_DATABASE_URL", &db),
            ("COURSEGATE_SECRET", coursegate_testkit::TEST_SECRET),
            ("COURSEGATE_BASE_URL", "ftp://example.com"),
        ],
        &["serve"],
    );
    assert_fails_naming(&o, "COURSEGATE_BASE_URL");
    let o = run_with(
        dir.path(),
        &[
            ("COURSEGATE_DATABASE_URL", &db),
            ("COURSEGATE_POOL_SIZE", "lots"),
        ],
        &["course", "list"],
    );
    assert_fails_naming(&o, "COURSEGATE_POOL_SIZE");
}

#[test]
fn migrate_reports_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/fresh/m.db", dir.path().display());
    let out = assert_ok(&run_with(
        dir.path(),
        &[("COURSEGATE_DATABASE_URL", &db)],
        &["migrate"],
    ));
    assert!(out.contains("Applied migration"), "{out}");
    let out = assert_ok(&run_with(
        dir.path(),
        &[("COURSEGATE_DATABASE_URL", &db)],
        &["migrate"],
    ));
    assert!(out.contains("Database is up to date"), "{out}");
}

#[test]
fn keys_rotate_waits_for_the_overlap_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("jwks");
    let env = [("COURSEGATE_KEYS_DIR", keys.to_str().unwrap())];
    let out = assert_ok(&run_with(dir.path(), &env, &["keys", "init"]));
    assert!(out.starts_with("Active key "), "{out}");
    let listed = assert_ok(&run_with(dir.path(), &env, &["keys", "list"]));
    assert!(
        listed.contains("\tActive") && listed.contains("\tNext"),
        "{listed}"
    );
    // The next key was published a moment ago: platforms may not have it yet.
    let err = assert_fails_naming(
        &run_with(dir.path(), &env, &["keys", "rotate"]),
        "published only since",
    );
    assert!(err.contains("--force"), "{err}");
    let out = assert_ok(&run_with(dir.path(), &env, &["keys", "rotate", "--force"]));
    assert!(out.starts_with("Activated "), "{out}");
    assert!(out.contains("retired"), "{out}");
    let listed = assert_ok(&run_with(dir.path(), &env, &["keys", "list"]));
    assert!(listed.contains("\tRetired"), "{listed}");
}

each_backend! {
    async fn platform_add_takes_repeated_trusted_audiences(backend) {
        let cli = Cli::new(&backend);
        let base = [
            "platform", "add", "--issuer", "https://lms.example.edu", "--client-id", "tool-1",
            "--auth-url", "https://lms.example.edu/auth", "--token-url", "https://lms.example.edu/token",
            "--jwks-url", "https://lms.example.edu/jwks", "--deployment-id", "d1",
        ];
        let mut args = base.to_vec();
        args.extend([
            "--trusted-audience", "https://analytics.example.edu",
            "--trusted-audience", "reporting-client",
            "--trusted-audience", "https://analytics.example.edu",
            "--trusted-audience", "tool-1",
        ]);
        let out = assert_ok(&cli.run(&args));
        assert!(out.contains("  trusted audience https://analytics.example.edu\n  trusted audience reporting-client\n"), "{out}");
        let out = assert_ok(&cli.run(&["platform", "list"]));
        assert!(out.contains("  trusted audience reporting-client"), "{out}");

        // Kept one per line, without duplicates or our own client_id.
        let store = cli.store.clone();
        let kept = tokio::task::spawn_blocking(move || {
            store.read_blocking(|tx| repo::lti::find_platform(tx, "https://lms.example.edu", "tool-1"))
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .trusted_audiences;
        assert_eq!(kept.as_deref(), Some("https://analytics.example.edu\nreporting-client"));

        // An audience with a space is named and refused.
        let mut args = base.to_vec();
        args[5] = "tool-2";
        args.extend(["--trusted-audience", "two words"]);
        assert_fails_naming(&cli.run(&args), "--trusted-audience: \"two words\" contains a space");
    }
}
