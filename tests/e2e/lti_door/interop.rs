//! Interop with an independent LTI 1.3 platform implementation: the PyPI
//! package `lti1p3platform`, wrapped by `tests/interop/platform.py`. The
//! package goes into a virtualenv under `~/.cache/coursegate/` (or the
//! interpreter in `COURSEGATE_INTEROP_PYTHON` is used as is). The platform is
//! registered with the same core call as `coursegate platform add`, then
//! drives login → launch over HTTP into the course.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use coursegate_core::lti::{self as core_lti, DeploymentPolicy, NewPlatform};
use serde::Deserialize;

use crate::common::{cookie_client, skip, Opts, Tool};

const TEST: &str = "interop::lti1p3platform_launches_into_the_course";
/// The version the suite is known to work with (bump deliberately).
const PACKAGE: &str = "lti1p3platform==0.1.8";

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} {:?} failed: {}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ))
    }
}

/// A python with `lti1p3platform` importable, installing it into a venv if needed.
fn python_with_package() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("COURSEGATE_INTEROP_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/coursegate/interop-venv");
    let py = venv.join("bin/python");
    let has_pkg = |py: &Path| {
        Command::new(py)
            .args(["-c", "import lti1p3platform.ltiplatform"])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if py.is_file() && has_pkg(&py) {
        return Ok(py);
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        .map_err(|e| format!("python3 with venv is unavailable: {e}"))?;
    run(Command::new(&py).args(["-m", "pip", "install", "--quiet", PACKAGE]))
        .map_err(|e| format!("pip install {PACKAGE} failed: {e}"))?;
    if has_pkg(&py) {
        Ok(py)
    } else {
        Err(format!("{PACKAGE} installed but not importable"))
    }
}

struct PyPlatform {
    child: Child,
}

impl Drop for PyPlatform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Deserialize, Debug)]
struct Announce {
    issuer: String,
    client_id: String,
    deployment_id: String,
    auth_url: String,
    jwks_url: String,
    start_url: String,
}

fn hidden_input(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + key.len();
    let end = html[at..].find('"').unwrap() + at;
    html[at..end].replace("&amp;", "&")
}

#[actix_web::test]
async fn lti1p3platform_launches_into_the_course() {
    let py = match python_with_package() {
        Ok(p) => p,
        Err(e) => return skip(TEST, &e),
    };
    // The package signs with the wall clock, so the tool uses it too.
    let tool = Tool::start(Opts {
        system_clock: true,
        register_test_platform: false,
        ..Default::default()
    })
    .await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/platform.py");
    let mut child = Command::new(&py)
        .arg(&script)
        .args(["--tool-base", &tool.base])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _platform = PyPlatform { child };
    let a: Announce = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("platform.py announced {line:?}: {e}"));

    // `coursegate platform add --issuer … --client-id … --auth-url … --token-url …
    //  --jwks-url … --deployment-id …`, as the CLI does it.
    let now = tool.clock.now();
    let reg = NewPlatform {
        issuer: a.issuer.clone(),
        client_id: a.client_id.clone(),
        name: Some("lti1p3platform".into()),
        auth_url: a.auth_url.clone(),
        token_url: a.auth_url.replace("/auth", "/token"),
        jwks_url: a.jwks_url.clone(),
        audience: None,
        customer: None,
        lms: None,
        unknown_deployments: DeploymentPolicy::Reject,
        deployment_ids: vec![a.deployment_id.clone()],
        trusted_audiences: Vec::new(),
    };
    tool.store
        .write_blocking(move |tx| core_lti::add_platform(tx, now, reg))
        .unwrap();

    // The learner clicks the link in the LMS.
    let browser = cookie_client();
    let res = browser
        .get(&a.start_url)
        .query(&[("user", "py-learner-1"), ("course", "intro")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let login = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        login.starts_with(&format!("{}/lti/login?", tool.base)),
        "{login}"
    );
    let res = browser.get(&login).send().await.unwrap();
    assert_eq!(
        res.status(),
        302,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let auth = res.headers()["location"].to_str().unwrap().to_string();
    assert!(auth.starts_with(&a.auth_url), "{auth}");
    let res = browser.get(&auth).send().await.unwrap();
    let status = res.status();
    let page = res.text().await.unwrap();
    assert_eq!(
        status, 200,
        "the platform refused the tool's auth request: {page}"
    );
    let action = {
        let at = page.find("action=\"").unwrap() + 8;
        page[at..at + page[at..].find('"').unwrap()].to_string()
    };
    assert_eq!(action, tool.launch_url());
    let id_token = hidden_input(&page, "id_token");
    let state = hidden_input(&page, "state");
    let res = tool
        .launch_at(&browser, &tool.base, &id_token, &state)
        .await;
    let to = tool.follow_to_course(&browser, &tool.base, res).await;
    assert_eq!(to, "/courses/intro");

    let rec = tool
        .flights()
        .into_iter()
        .find(|r| r.step == "launch")
        .unwrap();
    assert_eq!(rec.outcome, "ok");
    assert_eq!(rec.issuer.as_deref(), Some(a.issuer.as_str()));
    assert_eq!(rec.deployment_id.as_deref(), Some(a.deployment_id.as_str()));
    // The same token again is refused.
    let res = tool
        .launch_at(&browser, &tool.base, &id_token, &state)
        .await;
    crate::common::assert_refused(res, "state_replayed", "interop replay").await;
}
