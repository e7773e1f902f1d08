//! The instructor view and the Names and Role Provisioning roster import:
//! an instructor launch lands on the course's instructor view; importing
//! the roster reads every memberships page of the strict test platform
//! (page size 2, `Link: rel="next"`), enrols the learner members (short and
//! full role names) and no instructor, and shows who has not started.

use coursegate_store::repo;
use serde_json::{json, Value};

use crate::common::{assert_refused, claim, cookie_client, Db, Opts, Tool, INSTRUCTOR, LEARNER};

const NRPS_CLAIM: &str = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice";
const NRPS_SCOPE: &str =
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";

fn nrps_claim(tool: &Tool) -> Value {
    json!({
        "context_memberships_url": tool.platform.memberships_url,
        "service_versions": ["2.0"],
    })
}

fn csrf_of(page: &str) -> String {
    let k = "name=\"csrf\" value=\"";
    let i = page
        .find(k)
        .unwrap_or_else(|| panic!("a csrf field in {page}"))
        + k.len();
    page[i..i + page[i..].find('"').unwrap()].to_string()
}

fn k_of(path: &str) -> String {
    path.split_once("?k=")
        .map(|(_, k)| k.split('&').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("a key in {path}"))
}

/// The status cell of the roster row of `sub`, if listed.
fn status_of(page: &str, sub: &str) -> Option<String> {
    let i = page.find(&format!("data-sub=\"{sub}\""))?;
    let row = &page[i..i + page[i..].find("</tr>").unwrap()];
    let k = "<td class=\"status\">";
    let j = row.find(k).unwrap() + k.len();
    Some(row[j..j + row[j..].find("</td>").unwrap()].to_string())
}

/// Launches `sub` with `roles` (own cookie jar, NRPS claim when `nrps`);
/// returns the client and where the launch ended.
async fn launch(tool: &Tool, sub: &str, roles: &[&str], nrps: bool) -> (reqwest::Client, String) {
    let client = cookie_client();
    let (state, nonce) = tool.login_at(&client, &tool.base).await;
    let mut m = tool
        .minter(&nonce)
        .roles(roles)
        .claim("sub", sub)
        .claim(&claim("custom"), json!({"course": "intro"}));
    if nrps {
        m = m.claim(NRPS_CLAIM, nrps_claim(tool));
    }
    let res = tool.launch_at(&client, &tool.base, &m.mint(), &state).await;
    let to = tool.follow_to_course(&client, &tool.base, res).await;
    (client, to)
}

async fn get(client: &reqwest::Client, url: String) -> String {
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

async fn post_import(
    tool: &Tool,
    client: &reqwest::Client,
    view: &str,
    csrf: &str,
    k: &str,
) -> reqwest::Response {
    let path = view.split('?').next().unwrap();
    client
        .post(format!("{}{path}/roster", tool.base))
        .form(&[("csrf", csrf), ("k", k)])
        .send()
        .await
        .unwrap()
}

fn roster() -> Vec<Value> {
    vec![
        json!({"user_id": "teacher-1", "roles": ["Instructor"], "name": "Grace Teacher"}),
        json!({"user_id": "learner-a", "roles": ["Learner"], "name": "Alan Turing", "email": "alan@example.edu"}),
        json!({"user_id": "learner-b", "roles": [LEARNER], "given_name": "Barbara", "family_name": "Liskov", "status": "Active"}),
        json!({"user_id": "ta-1", "roles": [INSTRUCTOR, "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"]}),
        json!({"user_id": "lms-learner-1", "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"], "name": "Lin Launched"}),
        json!({"user_id": "learner-gone", "roles": ["Learner"], "status": "Inactive"}),
    ]
}

async fn instructor_view_and_roster_import(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    tool.platform.services.lock().unwrap().members = roster();
    // A learner launched before the import.
    let (_, to) = launch(&tool, "lms-learner-1", &[LEARNER], true).await;
    assert_eq!(to, "/courses/intro");

    // The instructor lands on the instructor view, not in the course.
    let (teacher, view) = launch(&tool, "teacher-1", &["Instructor"], true).await;
    assert!(view.starts_with("/lti/instructor/"), "{view}");
    let page = get(&teacher, format!("{}{view}", tool.base)).await;
    assert!(page.contains("Instructor view"), "{page}");
    assert!(page.contains("Import roster"), "{page}");
    assert_eq!(
        status_of(&page, "lms-learner-1").as_deref(),
        Some("In progress")
    );
    assert_eq!(
        status_of(&page, "teacher-1"),
        None,
        "the instructor is no learner"
    );

    let res = post_import(&tool, &teacher, &view, &csrf_of(&page), &k_of(&view)).await;
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert!(back.ends_with("&imported=3&enrolled=2"), "{back}");
    {
        let sv = tool.platform.services.lock().unwrap();
        assert!(sv.refusals.is_empty(), "{:?}", sv.refusals);
        assert!(sv.token_refusals.is_empty(), "{:?}", sv.token_refusals);
        assert_eq!(
            sv.member_pages,
            vec![1, 2, 3],
            "every page, following rel=next"
        );
        assert!(sv
            .tokens
            .values()
            .any(|scopes| scopes == &vec![NRPS_SCOPE.to_string()]));
    }
    let page = get(&teacher, format!("{}{back}", tool.base)).await;
    assert!(page.contains("Roster imported: 3 learners from the LMS, 2 newly enrolled."));
    assert_eq!(
        status_of(&page, "learner-a").as_deref(),
        Some("Not started")
    );
    assert_eq!(
        status_of(&page, "learner-b").as_deref(),
        Some("Not started")
    );
    assert_eq!(
        status_of(&page, "lms-learner-1").as_deref(),
        Some("In progress")
    );
    for absent in ["teacher-1", "ta-1", "learner-gone"] {
        assert_eq!(status_of(&page, absent), None, "{absent} is not enrolled");
    }
    assert!(page.contains("Alan Turing") && page.contains("alan@example.edu"));
    assert!(page.contains("Barbara Liskov"));
    assert!(
        page.contains("3 learners · 0 completed · 2 not started"),
        "{page}"
    );

    // In the database: active lti enrolments for the three learners only.
    let rows = tool
        .store
        .read_blocking(|tx| {
            let course = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            repo::enrolments::of_course(tx, &course.id)
        })
        .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows
        .iter()
        .all(|e| e.source == "lti" && e.status == "active"));

    // Importing again changes nothing.
    let res = post_import(&tool, &teacher, &view, &csrf_of(&page), &k_of(&view)).await;
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert!(back.ends_with("&imported=3&enrolled=0"), "{back}");

    // A member who then launches is the same learner, now started.
    let (_, to) = launch(&tool, "learner-a", &[LEARNER], true).await;
    assert_eq!(to, "/courses/intro");
    let page = get(&teacher, format!("{}{view}", tool.base)).await;
    assert_eq!(
        status_of(&page, "learner-a").as_deref(),
        Some("In progress")
    );
    let n = tool
        .store
        .read_blocking(|tx| {
            let course = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            repo::enrolments::of_course(tx, &course.id)
        })
        .unwrap()
        .len();
    assert_eq!(n, 3);
}

#[actix_web::test]
async fn instructor_view_and_roster_import_sqlite() {
    instructor_view_and_roster_import(Db::Sqlite).await;
}

#[actix_web::test]
async fn instructor_view_and_roster_import_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        crate::common::skip(
            "instructor_view_and_roster_import_postgres",
            "TEST_DATABASE_URL is not set",
        );
        return;
    };
    instructor_view_and_roster_import(db).await;
}

#[actix_web::test]
async fn a_learner_cannot_open_the_instructor_view_or_import() {
    let tool = Tool::start(Opts::default()).await;
    tool.platform.services.lock().unwrap().members = roster();
    let (_, view) = launch(&tool, "teacher-1", &[INSTRUCTOR], true).await;
    let (learner, to) = launch(&tool, "lms-learner-1", &["Learner"], true).await;
    assert_eq!(to, "/courses/intro");
    let res = learner
        .get(format!("{}{view}", tool.base))
        .send()
        .await
        .unwrap();
    assert_refused(
        res,
        "not_instructor",
        "a learner opening the instructor view",
    )
    .await;
    // A valid CSRF token of the learner's own session, the instructor's key.
    let course = get(&learner, format!("{}/courses/intro", tool.base)).await;
    let res = post_import(&tool, &learner, &view, &csrf_of(&course), &k_of(&view)).await;
    assert_refused(res, "not_instructor", "a learner posting the import").await;
    let res = post_import(&tool, &learner, &view, &csrf_of(&course), "").await;
    assert_refused(res, "not_instructor", "a learner posting without a key").await;
    let res = post_import(&tool, &learner, &view, "forged", &k_of(&view)).await;
    assert_refused(res, "csrf_failed", "an import without the CSRF token").await;
    assert!(tool
        .platform
        .services
        .lock()
        .unwrap()
        .member_pages
        .is_empty());
    let n = tool
        .store
        .read_blocking(|tx| {
            let course = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            repo::enrolments::of_course(tx, &course.id)
        })
        .unwrap()
        .len();
    assert_eq!(n, 1, "only the learner's own launch");
}

#[actix_web::test]
async fn a_platform_refusal_is_shown_as_a_clear_refusal() {
    let tool = Tool::start(Opts::default()).await;
    tool.platform.services.lock().unwrap().memberships_refusal =
        Some((403, "Names and Roles is not enabled for this course".into()));
    let (teacher, view) = launch(&tool, "teacher-1", &[INSTRUCTOR], true).await;
    let page = get(&teacher, format!("{}{view}", tool.base)).await;
    let res = post_import(&tool, &teacher, &view, &csrf_of(&page), &k_of(&view)).await;
    assert_eq!(res.status(), 424);
    let body = {
        let r = res;
        assert_eq!(crate::common::code(&r), "roster_refused");
        r.text().await.unwrap()
    };
    assert!(
        body.contains(
            "The LMS refused the roster request with HTTP 403: Names and Roles is not enabled for this course"
        ),
        "{body}"
    );

    // Platform down: the same clear refusal, never a 5xx.
    {
        let mut sv = tool.platform.services.lock().unwrap();
        sv.memberships_refusal = None;
        sv.down = true;
    }
    let res = post_import(&tool, &teacher, &view, &csrf_of(&page), &k_of(&view)).await;
    let status = res.status();
    assert_eq!(crate::common::code(&res), "roster_refused");
    let body = res.text().await.unwrap();
    assert_eq!(status, 424, "{body}");
    assert!(body.contains("HTTP 503"), "{body}");
}

#[actix_web::test]
async fn without_the_nrps_claim_the_import_is_refused() {
    let tool = Tool::start(Opts::default()).await;
    let (teacher, view) = launch(&tool, "teacher-1", &[INSTRUCTOR], false).await;
    let page = get(&teacher, format!("{}{view}", tool.base)).await;
    assert!(!page.contains("Import roster"), "{page}");
    let res = post_import(&tool, &teacher, &view, &csrf_of(&page), &k_of(&view)).await;
    assert_refused(res, "roster_unavailable", "an import without the service").await;
}

#[actix_web::test]
async fn the_instructor_view_shows_the_platforms_results() {
    use coursegate_server::workers::{deliver_due_scores, ScoreWorker};
    let tool = Tool::start(Opts::default()).await;
    crate::ags::launch_and_complete(&tool, "lms-user-42").await;
    let pass = deliver_due_scores(&tool.state, &ScoreWorker::default())
        .await
        .unwrap();
    assert_eq!(pass.sent, 1);

    let client = cookie_client();
    let (state, nonce) = tool.login_at(&client, &tool.base).await;
    let token = tool
        .minter(&nonce)
        .roles(&[INSTRUCTOR])
        .claim("sub", "teacher-1")
        .claim(&claim("custom"), json!({"course": "intro"}))
        .claim(
            "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint",
            json!({
                "scope": [
                    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
                ],
                "lineitems": tool.platform.lineitems_url,
            }),
        )
        .mint();
    let res = tool.launch_at(&client, &tool.base, &token, &state).await;
    let view = tool.follow_to_course(&client, &tool.base, res).await;
    let page = get(&client, format!("{}{view}", tool.base)).await;
    assert_eq!(
        status_of(&page, "lms-user-42").as_deref(),
        Some("Completed")
    );
    let i = page.find("data-sub=\"lms-user-42\"").unwrap();
    let row = &page[i..i + page[i..].find("</tr>").unwrap()];
    assert!(row.contains("<td class=\"grade\">100 of 100</td>"), "{row}");
    let sv = tool.platform.services.lock().unwrap();
    assert!(sv.refusals.is_empty(), "{:?}", sv.refusals);
}

/// The platform offers a differences URL (`Link: <…?since=1>;
/// rel="differences"`): it is stored for the context, and the next import
/// reads only the changes — a new learner is enrolled, a member now
/// Inactive loses access — while everyone else stays as they were. A member
/// listed active again later gets access back; an enrolment staff revoked
/// stays revoked.
async fn the_second_import_reads_the_differences(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    {
        let mut sv = tool.platform.services.lock().unwrap();
        sv.members = roster();
        sv.differences = Some(vec![]);
    }
    let (teacher, view) = launch(&tool, "teacher-1", &["Instructor"], true).await;
    let page = get(&teacher, format!("{}{view}", tool.base)).await;
    let (csrf, k) = (csrf_of(&page), k_of(&view));
    let res = post_import(&tool, &teacher, &view, &csrf, &k).await;
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert!(back.ends_with("&imported=3&enrolled=3"), "{back}");
    let stored = tool
        .store
        .read_blocking(|tx| {
            let p = repo::lti::find_platform(
                tx,
                coursegate_lti::testing::ISSUER,
                coursegate_lti::testing::CLIENT_ID,
            )?
            .unwrap();
            let course = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            repo::lti_services::get_context_roster(tx, &p.id, "ctx-1", &course.id)
        })
        .unwrap()
        .expect("the context's sync is recorded");
    assert_eq!(
        stored.differences_url.as_deref(),
        Some(
            format!(
                "http://127.0.0.1:{}/memberships?since=1",
                tool.platform.port
            )
            .as_str()
        )
    );

    // Changes in the LMS: a new learner, and learner-a is no longer active.
    // Meanwhile staff revoked learner-b's enrolment by hand.
    // learner-api is an LMS member whose access was bought (API), not given
    // by the LMS: the LMS listing them inactive does not end it.
    tool.platform.services.lock().unwrap().differences = Some(vec![
        json!({"user_id": "learner-new", "roles": ["Learner"], "name": "Niklaus Wirth"}),
        json!({"user_id": "learner-a", "roles": ["Learner"], "status": "Inactive"}),
        json!({"user_id": "learner-api", "roles": ["Learner"], "status": "Inactive"}),
    ]);
    let now = tool.clock.now();
    let bought = tool
        .store
        .write_blocking(move |tx| {
            let l = coursegate_core::learners::upsert_by_lti(
                tx,
                now,
                coursegate_lti::testing::ISSUER,
                coursegate_lti::testing::CLIENT_ID,
                "learner-api",
                None,
                Some("Api Buyer"),
            )?
            .learner;
            let course = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            coursegate_core::enrolments::grant(
                tx,
                now,
                coursegate_core::enrolments::Grant {
                    learner_id: l.id,
                    course_id: course.id,
                    source: coursegate_core::enrolments::Source::Api,
                    source_ref: Some("order-1".into()),
                    starts_at: None,
                    expires_at: None,
                },
            )
        })
        .unwrap()
        .enrolment;
    let now = tool.clock.now();
    let revoked_b = tool
        .store
        .write_blocking(move |tx| {
            let course = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            let e = repo::enrolments::of_course(tx, &course.id)?
                .into_iter()
                .find(|e| {
                    repo::learners::get(tx, &e.learner_id)
                        .ok()
                        .flatten()
                        .and_then(|l| l.name)
                        .as_deref()
                        == Some("Barbara Liskov")
                })
                .unwrap();
            coursegate_core::enrolments::revoke(tx, now, &e.id, Some("staff"))
        })
        .unwrap();
    let pages_before = tool.platform.services.lock().unwrap().member_pages.len();
    let res = post_import(&tool, &teacher, &view, &csrf, &k).await;
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        back.ends_with("&imported=1&enrolled=1&removed=1&changes=1"),
        "{back}"
    );
    {
        let sv = tool.platform.services.lock().unwrap();
        assert_eq!(sv.difference_reads, vec!["1".to_string()]);
        assert_eq!(
            sv.member_pages.len(),
            pages_before,
            "the full roster was not read again"
        );
    }
    let page = get(&teacher, format!("{}{back}", tool.base)).await;
    assert!(
        page.contains("1 no longer active in the LMS, their access ended."),
        "{page}"
    );
    assert!(page.contains("Only the changes since the last import were read."));
    let kept = tool
        .store
        .read_blocking(move |tx| repo::enrolments::get(tx, &bought.id))
        .unwrap()
        .unwrap();
    assert_eq!(kept.status, "active", "bought access stays");
    assert!(kept.revoked_at.is_none());
    assert_eq!(
        status_of(&page, "learner-new").as_deref(),
        Some("Not started")
    );
    assert_eq!(status_of(&page, "learner-a"), None, "removed");
    assert_eq!(status_of(&page, "learner-b"), None, "revoked by staff");
    assert_eq!(
        status_of(&page, "lms-learner-1").as_deref(),
        Some("Not started")
    );
    // The newer differences URL is the one kept.
    let stored = tool
        .store
        .read_blocking(|tx| {
            let p = repo::lti::find_platform(
                tx,
                coursegate_lti::testing::ISSUER,
                coursegate_lti::testing::CLIENT_ID,
            )?
            .unwrap();
            let course = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            repo::lti_services::get_context_roster(tx, &p.id, "ctx-1", &course.id)
        })
        .unwrap()
        .unwrap();
    assert!(
        stored
            .differences_url
            .as_deref()
            .unwrap()
            .ends_with("/memberships?since=2"),
        "{stored:?}"
    );

    // Both listed active again: learner-a (removed by the roster) is back,
    // learner-b (revoked by staff) is not.
    tool.platform.services.lock().unwrap().differences = Some(vec![
        json!({"user_id": "learner-a", "roles": ["Learner"], "status": "Active"}),
        json!({"user_id": "learner-b", "roles": ["Learner"]}),
    ]);
    let res = post_import(&tool, &teacher, &view, &csrf, &k).await;
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert!(back.ends_with("&imported=2&enrolled=1&changes=1"), "{back}");
    let page = get(&teacher, format!("{}{back}", tool.base)).await;
    assert_eq!(
        status_of(&page, "learner-a").as_deref(),
        Some("Not started")
    );
    assert_eq!(status_of(&page, "learner-b"), None);
    let still = tool
        .store
        .read_blocking(move |tx| repo::enrolments::get(tx, &revoked_b.id))
        .unwrap()
        .unwrap();
    assert_eq!(still.status, "revoked");
    assert_eq!(
        tool.platform.services.lock().unwrap().difference_reads,
        vec!["1".to_string(), "2".to_string()]
    );

    // The roster removes learner-new; staff give access back by hand, then
    // revoke it by hand: a later active listing does not undo that.
    tool.platform.services.lock().unwrap().differences = Some(vec![json!(
        {"user_id": "learner-new", "roles": ["Learner"], "status": "Deleted"}
    )]);
    let res = post_import(&tool, &teacher, &view, &csrf, &k).await;
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert!(back.ends_with("&removed=1&changes=1"), "{back}");
    tool.manual.advance(chrono::Duration::seconds(5));
    let now = tool.clock.now();
    let new_id = tool
        .store
        .write_blocking(move |tx| {
            let course = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            let e = repo::enrolments::of_course(tx, &course.id)?
                .into_iter()
                .find(|e| {
                    repo::learners::get(tx, &e.learner_id)
                        .ok()
                        .flatten()
                        .and_then(|l| l.name)
                        .as_deref()
                        == Some("Niklaus Wirth")
                })
                .unwrap();
            coursegate_core::enrolments::grant(
                tx,
                now,
                coursegate_core::enrolments::Grant {
                    learner_id: e.learner_id.clone(),
                    course_id: course.id.clone(),
                    source: coursegate_core::enrolments::Source::Lti,
                    source_ref: None,
                    starts_at: None,
                    expires_at: None,
                },
            )?;
            coursegate_core::enrolments::revoke(tx, now, &e.id, Some("staff"))
        })
        .unwrap()
        .id;
    tool.platform.services.lock().unwrap().differences = Some(vec![json!(
        {"user_id": "learner-new", "roles": ["Learner"], "status": "Active"}
    )]);
    let res = post_import(&tool, &teacher, &view, &csrf, &k).await;
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert!(back.ends_with("&imported=1&enrolled=0&changes=1"), "{back}");
    let e = tool
        .store
        .read_blocking(move |tx| repo::enrolments::get(tx, &new_id))
        .unwrap()
        .unwrap();
    assert_eq!(e.status, "revoked", "a staff revocation stays");
}

#[actix_web::test]
async fn the_second_import_reads_the_differences_sqlite() {
    the_second_import_reads_the_differences(Db::Sqlite).await;
}

#[actix_web::test]
async fn the_second_import_reads_the_differences_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        crate::common::skip(
            "the_second_import_reads_the_differences_postgres",
            "TEST_DATABASE_URL is not set",
        );
        return;
    };
    the_second_import_reads_the_differences(db).await;
}
