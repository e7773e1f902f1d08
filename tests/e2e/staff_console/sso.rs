//! Staff single sign-on against a real OpenID Connect provider: the npm
//! package `oidc-provider`, driven by tests/oidc/provider.js and started on
//! loopback per test. The test plays the browser: it follows Coursegate's
//! redirect to the provider, the provider's redirects (its interaction page
//! signs in the account named by `login_hint`, no form), and the redirect back
//! to Coursegate's callback.
//!
//! Needs node and `npm ci --prefix tests/oidc` (.ci/run does both). Without
//! them the tests print a loud SKIPPED line on a laptop and fail in CI.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use chrono::{DateTime, Utc};
use coursegate_core::{staff::Role, types::Email, CoreError};
use coursegate_store::repo;

use crate::magic_links::harness::{backends, client, code, App};

const CLIENT_ID: &str = "coursegate";
const CLIENT_SECRET: &str = "coursegate-test-secret";

/// The provider process; killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

/// Whether node and the provider package are installed; SKIPPED or a
/// failure (CI=true) when not.
fn provider_available() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let installed = || {
        oidc_dir()
            .join("node_modules/oidc-provider/package.json")
            .exists()
    };
    // The README's one test command installs the pinned provider itself,
    // once per test run (the tests of this binary share the directory).
    static INSTALL: std::sync::Once = std::sync::Once::new();
    if node && !installed() {
        INSTALL.call_once(|| {
            let _ = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(oidc_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        });
    }
    let package = installed();
    if node && package {
        return true;
    }
    let why = if node {
        "the oidc-provider package is not installed and `npm ci --prefix tests/oidc` failed"
    } else {
        "node is not installed"
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {why}: the single sign-on tests must run in CI");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: single sign-on tests against oidc-provider: {why} ***\n"
    );
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_provider(port: u16, redirect_uri: &str) -> Provider {
    let child = Command::new("node")
        .arg(oidc_dir().join("provider.js"))
        .env("PORT", port.to_string())
        .env("REDIRECT_URI", redirect_uri)
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    let mut p = Provider {
        child,
        issuer: format!("http://127.0.0.1:{port}"),
    };
    let discovery = format!("{}/.well-known/openid-configuration", p.issuer);
    let http = reqwest::Client::new();
    // Node can take a while to start while the other tests load both cores:
    // wait up to a minute, but stop at once if the provider has exited.
    for _ in 0..600 {
        if let Ok(r) = http.get(&discovery).send().await {
            if r.status() == 200 {
                return p;
            }
        }
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("oidc-provider exited ({status}) before answering discovery at {discovery}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("oidc-provider did not answer discovery at {discovery}");
}

/// A Coursegate app configured for single sign-on, and its provider.
async fn spawn(pg: Option<String>) -> (App, Provider) {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    // The provider stamps its ID tokens with the real time, so the app's
    // (manual) clock starts there.
    #[allow(clippy::disallowed_methods)]
    let start: DateTime<Utc> = Utc::now();
    let app = App::spawn_with(pg, start, move |_| {
        vec![
            ("COURSEGATE_SSO_ISSUER", issuer),
            ("COURSEGATE_SSO_CLIENT_ID", CLIENT_ID.into()),
            ("COURSEGATE_SSO_CLIENT_SECRET", CLIENT_SECRET.into()),
            ("COURSEGATE_SSO_ALLOWED_DOMAINS", "acme.example".into()),
            ("COURSEGATE_SSO_DEFAULT_ROLE", "instructor".into()),
            ("COURSEGATE_SSO_PROVIDER_NAME", "Acme ID".into()),
        ]
    })
    .await;
    let provider = start_provider(port, &app.url("/staff/sso/callback")).await;
    (app, provider)
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("a Location header on {} {}", r.status(), r.url()))
        .to_str()
        .unwrap()
        .to_string()
}

/// One sign-in round trip as `email`: returns the browser (Coursegate's
/// cookies), the callback's response and the callback URL.
async fn sign_in(
    app: &App,
    p: &Provider,
    email: &str,
) -> (reqwest::Client, reqwest::Response, String) {
    let browser = client();
    let r = browser
        .get(app.url(&format!("/staff/sso?login_hint={email}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "start redirects to the provider");
    let authorize = url::Url::parse(&location(&r)).unwrap();
    assert!(authorize.as_str().starts_with(&format!("{}/", p.issuer)));
    let q: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256", "PKCE");
    assert!(q["code_challenge"].len() >= 43);
    assert!(q["nonce"].len() >= 16, "a nonce");
    assert!(q["state"].len() >= 16, "a state");
    assert!(q["scope"].contains("openid") && q["scope"].contains("email"));

    // The provider's own pages, with their own cookie jar.
    let idp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let mut at = authorize;
    for _ in 0..10 {
        let r = idp.get(at.clone()).send().await.unwrap();
        assert!(
            r.status().is_redirection(),
            "provider answered {} at {at}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
        let next = at.join(&location(&r)).unwrap();
        if next.as_str().starts_with(&app.url("/staff/sso/callback")) {
            let callback = next.to_string();
            let res = browser.get(&callback).send().await.unwrap();
            return (browser, res, callback);
        }
        at = next;
    }
    panic!("the provider never redirected back to Coursegate");
}

fn role_of(app: &App, email: &str) -> Option<String> {
    let e = email.to_string();
    app.store
        .read_blocking(move |tx| Ok::<_, CoreError>(repo::staff::find_by_email(tx, &e)?))
        .unwrap()
        .map(|s| s.role)
}

fn seed_staff(app: &App, email: &str, role: Role) {
    let e = Email::parse(email).unwrap();
    let now = coursegate_core::Clock::now(&app.clock);
    app.store
        .write_blocking(move |tx| coursegate_core::staff::ensure(tx, now, &e, None, role))
        .unwrap();
}

#[actix_web::test]
async fn sso_signs_in_allowed_domains_as_the_default_role_and_keeps_existing_roles() {
    if !provider_available() {
        return;
    }
    for pg in backends() {
        let (app, p) = spawn(pg).await;

        let page = client()
            .get(app.url("/staff/signin"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Sign in with Acme ID"), "{page}");

        // Discovery + PKCE + nonce round trip: a new user of an allowed domain.
        let (browser, res, callback) = sign_in(&app, &p, "alice@acme.example").await;
        assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
        assert_eq!(location(&res), "/staff");
        let console = browser.get(app.url("/staff")).send().await.unwrap();
        assert_eq!(console.status(), 200, "the staff session works");
        assert_eq!(
            role_of(&app, "alice@acme.example").as_deref(),
            Some("instructor")
        );
        let signed_in = app.audit_details("sso.signed_in");
        assert_eq!(signed_in.len(), 1);
        assert!(
            signed_in[0].contains("\"role\":\"instructor\""),
            "{signed_in:?}"
        );

        // The same callback again: the state works once.
        let replay = browser.get(&callback).send().await.unwrap();
        assert_eq!(replay.status(), 410);
        assert_eq!(code(&replay), "sso_state_used");
        assert!(replay
            .text()
            .await
            .unwrap()
            .contains("This sign-in attempt was already completed."));

        // Existing staff users keep their role, whatever their domain.
        seed_staff(&app, "bob@partner.example", Role::Admin);
        seed_staff(&app, "sam@acme.example", Role::Support);
        for (email, role) in [
            ("bob@partner.example", "admin"),
            ("sam@acme.example", "support"),
        ] {
            let (browser, res, _) = sign_in(&app, &p, email).await;
            assert_eq!(res.status(), 303, "{email}: {}", res.text().await.unwrap());
            assert_eq!(location(&res), "/staff");
            assert_eq!(
                browser
                    .get(app.url("/staff"))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                200
            );
            assert_eq!(role_of(&app, email).as_deref(), Some(role), "{email}");
        }
        assert_eq!(app.audit_count("sso.signed_in"), 3);
    }
}

#[actix_web::test]
async fn sso_refuses_unknown_domains_and_wrong_audience_id_tokens() {
    if !provider_available() {
        return;
    }
    for pg in backends() {
        let (app, p) = spawn(pg).await;

        // Not a staff user, domain not allowed.
        let (browser, res, _) = sign_in(&app, &p, "eve@elsewhere.example").await;
        assert_eq!(res.status(), 403);
        assert_eq!(code(&res), "sso_domain_not_allowed");
        assert!(res
            .text()
            .await
            .unwrap()
            .contains("its domain is not allowed to sign in"));
        assert_eq!(role_of(&app, "eve@elsewhere.example"), None);
        assert_eq!(
            browser
                .get(app.url("/staff"))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );

        // The provider issues an ID token for another client.
        let (_, res, _) = sign_in(&app, &p, "wrong-aud@acme.example").await;
        assert_eq!(res.status(), 400);
        assert_eq!(code(&res), "sso_wrong_audience");
        assert!(res.text().await.unwrap().contains("wrong audience"));
        assert_eq!(role_of(&app, "wrong-aud@acme.example"), None);

        // An unverified email is refused too.
        let (_, res, _) = sign_in(&app, &p, "unverified@acme.example").await;
        assert_eq!(res.status(), 403);
        assert_eq!(code(&res), "sso_email_unverified");

        // The provider's error parameter, and an unknown state.
        let b = client();
        let r = b
            .get(app.url("/staff/sso/callback?error=access_denied&state=x"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "sso_provider_error".into())
        );
        let r = b
            .get(app.url("/staff/sso/callback?code=abc&state=nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "sso_state_unknown".into())
        );

        let refused = app.audit_details("sso.refused");
        for reason in [
            "sso_domain_not_allowed",
            "sso_wrong_audience",
            "sso_email_unverified",
            "sso_provider_error",
            "sso_state_unknown",
        ] {
            assert!(
                refused.iter().any(|d| d.contains(reason)),
                "{reason} audited: {refused:?}"
            );
        }
        assert_eq!(app.audit_count("sso.signed_in"), 0);
    }
}
