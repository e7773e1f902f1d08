//! Interop with an independent LTI 1.3 platform implementation: the PyPI
//! package `lti1p3platform`, wrapped by `tests/interop/platform.py`. The
//! package goes into a virtualenv under `~/.cache/coursegate/` (or the
//! interpreter in `COURSEGATE_INTEROP_PYTHON` is used as is). The platform is
//! registered with the same core call as `coursegate platform add`, then
//! drives login → launch over HTTP into the course, Deep Linking (the
//! package validates our response), AGS (its token endpoint and score
//! handler record what our outbox posts, also after an outage) and NRPS
//! (its paged memberships handler).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use coursegate_core::lti::{self as core_lti, DeploymentPolicy, NewPlatform};
use coursegate_server::workers::{deliver_due_scores, ScorePass, ScoreWorker};
use coursegate_store::repo;
use serde::Deserialize;
use serde_json::{json, Value};

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

#[derive(Deserialize, Debug, Clone)]
struct Announce {
    port: u16,
    issuer: String,
    client_id: String,
    deployment_id: String,
    auth_url: String,
    token_url: String,
    jwks_url: String,
    start_url: String,
    base: String,
}

/// Starts `tests/interop/platform.py` for `tool_base` (on `port`, keeping
/// its data in `state` when given) and reads its announcement.
fn start_platform(
    py: &Path,
    tool_base: &str,
    port: Option<u16>,
    state: Option<&Path>,
) -> (PyPlatform, Announce) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/platform.py");
    let mut cmd = Command::new(py);
    cmd.arg(&script).args(["--tool-base", tool_base]);
    if let Some(p) = port {
        cmd.args(["--port", &p.to_string()]);
    }
    if let Some(s) = state {
        cmd.arg("--state").arg(s);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let a: Announce = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("platform.py announced {line:?}: {e}"));
    (PyPlatform { child }, a)
}

/// `coursegate platform add --issuer … --client-id … --auth-url …
///  --token-url … --jwks-url … --deployment-id …`, as the CLI does it.
fn register(tool: &Tool, a: &Announce) {
    let now = tool.clock.now();
    let reg = NewPlatform {
        issuer: a.issuer.clone(),
        client_id: a.client_id.clone(),
        name: Some("lti1p3platform".into()),
        auth_url: a.auth_url.clone(),
        token_url: a.token_url.clone(),
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
}

/// A tool on the wall clock (the package signs with it) and the platform.
async fn setup(test: &str) -> Option<(Tool, PathBuf, PyPlatform, Announce)> {
    let py = match python_with_package() {
        Ok(p) => p,
        Err(e) => {
            skip(test, &e);
            return None;
        }
    };
    let tool = Tool::start(Opts {
        system_clock: true,
        register_test_platform: false,
        ..Default::default()
    })
    .await;
    let (platform, a) = start_platform(&py, &tool.base, None, None);
    register(&tool, &a);
    Some((tool, py, platform, a))
}

fn hidden_input(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + key.len();
    let end = html[at..].find('"').unwrap() + at;
    html[at..end].replace("&amp;", "&").replace("&#x2F;", "/")
}

fn form_action(page: &str) -> String {
    let at = page.find("action=\"").unwrap() + 8;
    page[at..at + page[at..].find('"').unwrap()].replace("&#x2F;", "/")
}

/// The user clicks a link in the platform: login initiation with `params`,
/// the tool's login, the platform's auth answer; returns the tool's answer
/// to the launch post (and the token and state, for replays).
async fn click(
    tool: &Tool,
    a: &Announce,
    browser: &reqwest::Client,
    params: &[(&str, &str)],
) -> (reqwest::Response, String, String) {
    let res = browser
        .get(&a.start_url)
        .query(params)
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
    assert_eq!(form_action(&page), tool.launch_url());
    let id_token = hidden_input(&page, "id_token");
    let state = hidden_input(&page, "state");
    let res = tool.launch_at(browser, &tool.base, &id_token, &state).await;
    (res, id_token, state)
}

/// Follows an accepted launch (303 to /lti/continue/…) to where it lands.
async fn landing(tool: &Tool, browser: &reqwest::Client, res: reqwest::Response) -> String {
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let cont = res.headers()["location"].to_str().unwrap().to_string();
    let res = browser
        .get(format!("{}{cont}", tool.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    res.headers()["location"].to_str().unwrap().to_string()
}

async fn get_page(browser: &reqwest::Client, url: String) -> String {
    let res = browser.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    res.text().await.unwrap()
}

async fn recorded(a: &Announce) -> Value {
    reqwest::get(format!("{}/recorded", a.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The instructor picks `picks` (form fields) in the tool's Deep Linking
/// catalogue; the browser posts the signed response to the platform, whose
/// answer (the links it created) is returned.
async fn deep_link(tool: &Tool, a: &Announce, picks: &[(&str, &str)]) -> Value {
    let browser = cookie_client();
    let (res, _, _) = click(
        tool,
        a,
        &browser,
        &[
            ("user", "py-teacher-1"),
            ("role", "instructor"),
            ("message", "deep_link"),
        ],
    )
    .await;
    let picker = landing(tool, &browser, res).await;
    assert!(picker.starts_with("/lti/deep-link/"), "{picker}");
    let page = get_page(&browser, format!("{}{picker}", tool.base)).await;
    let mut form = vec![("csrf", hidden_input(&page, "csrf"))];
    form.extend(picks.iter().map(|(k, v)| (*k, v.to_string())));
    let res = browser
        .post(format!("{}{picker}", tool.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let return_url = form_action(&page);
    assert_eq!(return_url, format!("{}/deep_link/return", a.base));
    let jwt = hidden_input(&page, "JWT");
    // The package's validation is real: a response whose signature does
    // not verify against our JWKS is refused.
    let (head, sig) = jwt.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let forged = format!("{head}.{flipped}{}", &sig[1..]);
    let res = browser
        .post(&return_url)
        .form(&[("JWT", forged)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a forged response was accepted");
    // The auto-posting form, as the browser submits it.
    let res = browser
        .post(&return_url)
        .form(&[("JWT", jwt)])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(
        status, 200,
        "lti1p3platform refused the deep linking response: {body}"
    );
    serde_json::from_str(&body).unwrap()
}

/// Completes the only lesson of the course the browser is in.
async fn complete_course(tool: &Tool, browser: &reqwest::Client) {
    let course = get_page(browser, format!("{}/courses/intro", tool.base)).await;
    let k = "/courses/intro/lessons/";
    let i = course.find(k).expect("a lesson link") + k.len();
    let lesson = &course[i..i + course[i..].find('"').unwrap()];
    let url = format!("{}/courses/intro/lessons/{lesson}", tool.base);
    let page = get_page(browser, url.clone()).await;
    let res = browser
        .post(format!("{url}/complete"))
        .form(&[("csrf", hidden_input(&page, "csrf"))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "/courses/intro?completed=1"
    );
}

/// A learner opens the platform link `link` and completes the course.
async fn learner_completes(tool: &Tool, a: &Announce, user: &str, link: &str) {
    let browser = cookie_client();
    let (res, _, _) = click(tool, a, &browser, &[("user", user), ("link", link)]).await;
    assert_eq!(landing(tool, &browser, res).await, "/courses/intro");
    complete_course(tool, &browser).await;
}

#[actix_web::test]
async fn lti1p3platform_launches_into_the_course() {
    let Some((tool, _py, _platform, a)) = setup(TEST).await else {
        return;
    };
    // The learner clicks the link in the LMS.
    let browser = cookie_client();
    let (res, id_token, state) = click(
        &tool,
        &a,
        &browser,
        &[("user", "py-learner-1"), ("course", "intro")],
    )
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

/// Deep Linking, AGS and NRPS against the package: the platform accepts our
/// signed LtiDeepLinkingResponse (its own validation) and creates the link
/// with its line item; a learner launching that link lands in the course,
/// and the score our outbox posts (with our client-credentials token from
/// its token endpoint) is recorded by its AGS handler; an instructor
/// launching the link imports the roster from its NRPS handler (paged), and
/// the instructor view reads the grade back from its results handler. A
/// single-lesson item is accepted too and opens that lesson.
#[actix_web::test]
async fn lti1p3platform_accepts_deep_links_records_scores_and_lists_members() {
    const T: &str = "interop::lti1p3platform_accepts_deep_links_records_scores_and_lists_members";
    let Some((tool, _py, _platform, a)) = setup(T).await else {
        return;
    };
    let answer = deep_link(&tool, &a, &[("course", "intro")]).await;
    let created = answer["created"].as_array().unwrap();
    assert_eq!(created.len(), 1, "{answer}");
    let link = &created[0];
    assert_eq!(link["custom"], json!({"course": "intro"}));
    assert_eq!(link["title"], "Intro");
    assert!(link["lineitem"].is_string(), "graded: a line item, {link}");
    let link_id = link["id"].as_str().unwrap().to_string();
    let r = recorded(&a).await;
    let refusals = r["dl_refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 1, "only the forged one: {refusals:?}");
    assert!(
        refusals[0].as_str().unwrap().starts_with("package: "),
        "{refusals:?}"
    );
    assert_eq!(r["lineitems"][0]["scoreMaximum"], 100.0);
    assert_eq!(r["lineitems"][0]["resourceId"], "intro");

    // A learner opens the new link and completes the course; the score
    // worker posts the grade.
    learner_completes(&tool, &a, "py-learner-2", &link_id).await;
    let pass = deliver_due_scores(&tool.state, &ScoreWorker::default())
        .await
        .unwrap();
    assert_eq!(
        pass,
        ScorePass {
            sent: 1,
            ..Default::default()
        }
    );
    let r = recorded(&a).await;
    assert_eq!(r["token_refusals"], json!([]));
    assert_eq!(r["refused_scores"], json!([]));
    assert_eq!(r["tokens_issued"], 1);
    let scores = r["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 1, "{r}");
    let s = &scores[0]["score"];
    assert_eq!(scores[0]["lineitem"], 1);
    assert_eq!(s["userId"], "py-learner-2");
    assert_eq!(s["scoreGiven"], 100.0);
    assert_eq!(s["scoreMaximum"], 100.0);
    assert_eq!(s["activityProgress"], "Completed");
    assert_eq!(s["gradingProgress"], "FullyGraded");

    // The instructor opens the link: the instructor view, the roster import
    // from the platform's memberships (two per page), the LMS's grades.
    let members = json!([
        {"user_id": "py-teacher-1", "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"], "name": "Grace Teacher"},
        {"user_id": "py-learner-2", "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"], "name": "Member py-learner-2"},
        {"user_id": "py-learner-3", "roles": ["Learner"], "name": "Ada Lovelace", "email": "ada@example.edu"},
        {"user_id": "py-learner-4", "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"], "given_name": "Edsger", "family_name": "Dijkstra"},
        {"user_id": "py-learner-5", "roles": ["Learner"], "status": "Inactive"},
    ]);
    let res = reqwest::Client::new()
        .post(format!("{}/members", a.base))
        .json(&members)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let teacher = cookie_client();
    let (res, _, _) = click(
        &tool,
        &a,
        &teacher,
        &[
            ("user", "py-teacher-1"),
            ("role", "instructor"),
            ("link", &link_id),
        ],
    )
    .await;
    let view = landing(&tool, &teacher, res).await;
    assert!(view.starts_with("/lti/instructor/"), "{view}");
    let page = get_page(&teacher, format!("{}{view}", tool.base)).await;
    let i = page.find("data-sub=\"py-learner-2\"").expect("the learner");
    let row = &page[i..i + page[i..].find("</tr>").unwrap()];
    assert!(row.contains("<td class=\"grade\">100 of 100</td>"), "{row}");
    let k = view.split_once("?k=").unwrap().1.to_string();
    let res = teacher
        .post(format!(
            "{}{}/roster",
            tool.base,
            view.split('?').next().unwrap()
        ))
        .form(&[("csrf", hidden_input(&page, "csrf")), ("k", k)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert!(back.ends_with("&imported=3&enrolled=2"), "{back}");
    let r = recorded(&a).await;
    assert_eq!(
        r["member_pages"],
        json!([1, 2, 3]),
        "every page, by Link rel=next"
    );
    let page = get_page(&teacher, format!("{}{back}", tool.base)).await;
    for sub in ["py-learner-2", "py-learner-3", "py-learner-4"] {
        assert!(
            page.contains(&format!("data-sub=\"{sub}\"")),
            "{sub}: {page}"
        );
    }
    for sub in ["py-teacher-1", "py-learner-5"] {
        assert!(
            !page.contains(&format!("data-sub=\"{sub}\"")),
            "{sub} listed"
        );
    }
    assert!(page.contains("Ada Lovelace") && page.contains("Edsger Dijkstra"));

    // A single lesson: the package accepts the item (course and lesson in
    // custom, no line item); launching it opens the lesson.
    let lesson = tool
        .store
        .read_blocking(|tx| {
            let c = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            repo::courses::lessons_of(tx, &c.id)
        })
        .unwrap()
        .remove(0);
    let answer = deep_link(&tool, &a, &[("lesson", &format!("intro/{}", lesson.id))]).await;
    let link = &answer["created"][0];
    assert_eq!(
        link["custom"],
        json!({"course": "intro", "lesson": lesson.id})
    );
    assert!(link["lineitem"].is_null(), "{link}");
    let browser = cookie_client();
    let (res, _, _) = click(
        &tool,
        &a,
        &browser,
        &[
            ("user", "py-learner-3"),
            ("link", link["id"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        landing(&tool, &browser, res).await,
        format!("/courses/intro/lessons/{}", lesson.id)
    );
}

/// The platform goes away (its process ends) while scores are queued: the
/// worker keeps them pending; once the platform is back (a new process with
/// its data, signing with a new key, so the cached token is refused once)
/// every score is delivered, once.
#[actix_web::test]
async fn lti1p3platform_down_while_scores_are_queued_gets_each_once() {
    const T: &str = "interop::lti1p3platform_down_while_scores_are_queued_gets_each_once";
    let Some(py) = python_with_package().map_err(|e| skip(T, &e)).ok() else {
        return;
    };
    let tool = Tool::start(Opts {
        system_clock: true,
        register_test_platform: false,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("platform.json");
    let (platform, a) = start_platform(&py, &tool.base, None, Some(&state_file));
    register(&tool, &a);
    let created = deep_link(&tool, &a, &[("course", "intro")]).await;
    let link_id = created["created"][0]["id"].as_str().unwrap().to_string();
    // A first score, so the worker holds a token from the first process.
    let w = ScoreWorker {
        // Due again at once: the test drives the passes.
        first_backoff: chrono::Duration::zero(),
        ..Default::default()
    };
    learner_completes(&tool, &a, "py-early", &link_id).await;
    assert_eq!(deliver_due_scores(&tool.state, &w).await.unwrap().sent, 1);
    let learners = ["py-q-1", "py-q-2", "py-q-3"];
    for u in learners {
        learner_completes(&tool, &a, u, &link_id).await;
    }
    drop(platform);
    for _ in 0..2 {
        let pass = deliver_due_scores(&tool.state, &w).await.unwrap();
        assert_eq!(
            pass,
            ScorePass {
                retry: 3,
                ..Default::default()
            }
        );
    }
    let rows = tool
        .store
        .read_blocking(|tx| repo::outbox::by_topic(tx, coursegate_core::ags::TOPIC_SCORE))
        .unwrap();
    let queued: Vec<_> = rows.iter().filter(|r| r.status == "pending").collect();
    assert_eq!(queued.len(), 3);
    assert!(
        queued.iter().all(|r| r.attempts == 2
            && r.last_error
                .as_deref()
                .unwrap_or("")
                .contains("unreachable")),
        "{queued:?}"
    );

    let (_platform, b) = start_platform(&py, &tool.base, Some(a.port), Some(&state_file));
    assert_eq!(b.base, a.base);
    let pass = deliver_due_scores(&tool.state, &w).await.unwrap();
    assert_eq!(
        pass,
        ScorePass {
            sent: 3,
            ..Default::default()
        }
    );
    assert_eq!(
        deliver_due_scores(&tool.state, &w).await.unwrap(),
        ScorePass::default()
    );
    let r = recorded(&b).await;
    let users: Vec<&str> = r["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["score"]["userId"].as_str().unwrap())
        .collect();
    assert_eq!(users.len(), 4, "{r}");
    assert_eq!(users[0], "py-early");
    let mut later = users[1..].to_vec();
    later.sort_unstable();
    assert_eq!(later, learners, "each queued score once");
    // The token of the first process was refused once, then refreshed.
    assert_eq!(
        r["refused_scores"],
        json!([{"status": 401, "why": "invalid token: Signature verification failed"}])
    );
    assert_eq!(r["tokens_issued"], 2);
}
