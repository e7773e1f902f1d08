//! The course picker of an unmapped resource link, over real HTTP with the
//! test platform: a learner is told the activity is not set up (4xx,
//! `course_not_set_up`); the instructor of the launch sees the published
//! courses (search, cards), picks one with a CSRF-protected POST and lands
//! on the instructor view; nobody else can pick for that link; a mapped link
//! is never remapped here; the learner's next launch opens the course.

use coursegate_core::courses::{self, LinkPolicy, NewCourse, NewLesson};
use coursegate_core::types::Slug;
use serde_json::{json, Value};

use crate::common::{
    assert_refused, claim, code, cookie_client, launch_without_cookies, Db, Opts, Tool, INSTRUCTOR,
};

const LINK: &str = "rl-unmapped";

/// A launch of the unmapped link by `sub` with `roles` in a fresh browser;
/// returns the client and the launch response.
async fn launch(tool: &Tool, sub: &str, roles: &[&str]) -> (reqwest::Client, reqwest::Response) {
    let client = cookie_client();
    let (state, nonce) = tool.login_at(&client, &tool.base).await;
    let token = tool
        .minter(&nonce)
        .roles(roles)
        .claim("sub", sub)
        .claim(&claim("custom"), json!({}))
        .claim(
            &claim("resource_link"),
            json!({"id": LINK, "title": "Safety <basics>"}),
        )
        .mint();
    let res = tool.launch_at(&client, &tool.base, &token, &state).await;
    (client, res)
}

/// Follows an accepted launch to where it sends the browser (not further).
async fn landing(tool: &Tool, client: &reqwest::Client, res: reqwest::Response) -> String {
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let cont = res.headers()["location"].to_str().unwrap().to_string();
    let res = client
        .get(format!("{}{cont}", tool.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    res.headers()["location"].to_str().unwrap().to_string()
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

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let res = client.get(url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn pick(
    tool: &Tool,
    client: &reqwest::Client,
    picker: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let path = picker.split('?').next().unwrap();
    client
        .post(format!("{}{path}", tool.base))
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// A second published course and an unpublished one besides `intro`.
fn more_courses(tool: &Tool) {
    let now = tool.clock.now();
    tool.store
        .write_blocking(move |tx| {
            for (slug, title, published) in [
                ("fire-safety", "Fire safety", true),
                ("draft", "Unfinished draft", false),
            ] {
                courses::create(
                    tx,
                    now,
                    NewCourse {
                        slug: Slug::parse(slug).unwrap(),
                        title: title.into(),
                        summary: String::new(),
                        published,
                        graded: false,
                        link_policy: LinkPolicy::Access,
                        default_access_days: None,
                        lessons: vec![NewLesson::from_markdown("# One\n\nHello", "One")],
                    },
                )?;
            }
            Ok::<_, coursegate_core::CoreError>(())
        })
        .unwrap();
}

async fn an_instructor_picks_the_course_of_an_unmapped_link(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    more_courses(&tool);

    // A learner first: clearly refused, with a 4xx and the reason.
    let (_, res) = launch(&tool, "learner-1", &["Learner"]).await;
    assert_refused(res, "course_not_set_up", "a learner on an unmapped link").await;

    // An instructor of the context lands on the picker of this link.
    let (teacher, res) = launch(&tool, "teacher-1", &[INSTRUCTOR]).await;
    let picker = landing(&tool, &teacher, res).await;
    assert!(picker.starts_with("/lti/unmapped/"), "{picker}");
    let (status, page) = get(&teacher, format!("{}{picker}", tool.base)).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Choose the course for this activity"),
        "{page}"
    );
    assert!(
        page.contains("Safety &lt;basics&gt;"),
        "escaped title: {page}"
    );
    assert!(page.contains("data-course=\"intro\""), "{page}");
    assert!(page.contains("data-course=\"fire-safety\""), "{page}");
    assert!(
        !page.contains("data-course=\"draft\""),
        "unpublished: {page}"
    );
    let csrf = csrf_of(&page);
    let k = k_of(&picker);

    // Search by title.
    let (_, found) = get(&teacher, format!("{}{picker}&q=FIRE", tool.base)).await;
    assert!(found.contains("data-course=\"fire-safety\""), "{found}");
    assert!(!found.contains("data-course=\"intro\""), "{found}");
    let (_, none) = get(&teacher, format!("{}{picker}&q=zzz", tool.base)).await;
    assert!(none.contains("No published course matches"), "{none}");

    // A second instructor of the same link has their own key; a learner of
    // the platform, a forged key or a missing CSRF token may not pick.
    let (other, res) = launch(&tool, "teacher-2", &["Instructor"]).await;
    let other_picker = landing(&tool, &other, res).await;
    let (_, other_page) = get(&other, format!("{}{other_picker}", tool.base)).await;
    let other_csrf = csrf_of(&other_page);
    let res = pick(
        &tool,
        &other,
        &picker,
        &[("csrf", &other_csrf), ("k", &k), ("course", "intro")],
    )
    .await;
    assert_refused(res, "not_instructor", "another session with this key").await;
    let res = pick(
        &tool,
        &teacher,
        &picker,
        &[("csrf", &csrf), ("k", "forged"), ("course", "intro")],
    )
    .await;
    assert_refused(res, "not_instructor", "a forged key").await;
    let res = pick(&tool, &teacher, &picker, &[("k", &k), ("course", "intro")]).await;
    assert_refused(res, "csrf_failed", "no CSRF token").await;
    let res = pick(
        &tool,
        &teacher,
        &picker,
        &[("csrf", &csrf), ("k", &k), ("course", "draft")],
    )
    .await;
    assert_refused(res, "course_unknown", "an unpublished course").await;
    let (_, res) = launch(&tool, "learner-1", &["Learner"]).await;
    assert_eq!(code(&res), "course_not_set_up", "still unmapped");

    // An institution-level instructor (not of this context) gets the guide.
    let (faculty, res) = launch(
        &tool,
        "faculty-1",
        &["http://purl.imsglobal.org/vocab/lis/v2/institution/person#Faculty"],
    )
    .await;
    assert_eq!(landing(&tool, &faculty, res).await, "/lti/unmapped");

    // The instructor picks: the instructor view of that link.
    let res = pick(
        &tool,
        &teacher,
        &picker,
        &[("csrf", &csrf), ("k", &k), ("course", "fire-safety")],
    )
    .await;
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let view = res.headers()["location"].to_str().unwrap().to_string();
    assert!(view.starts_with("/lti/instructor/"), "{view}");
    let (status, page) = get(&teacher, format!("{}{view}", tool.base)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Fire safety"), "{page}");

    // Mapped now: never remapped from here, by anyone.
    let res = pick(
        &tool,
        &other,
        &other_picker,
        &[
            ("csrf", &other_csrf),
            ("k", &k_of(&other_picker)),
            ("course", "intro"),
        ],
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_refused(res, "resource_link_already_mapped", "a second pick").await;
    let res = pick(
        &tool,
        &teacher,
        &picker,
        &[("csrf", &csrf), ("k", &k), ("course", "intro")],
    )
    .await;
    assert_refused(
        res,
        "resource_link_already_mapped",
        "the same instructor again",
    )
    .await;
    // The other instructor's picker now shows the instructor view instead.
    let res = other
        .get(format!("{}{other_picker}", tool.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/lti/instructor/"));

    // The learner's next launch opens the course.
    let (learner, res) = launch(&tool, "learner-1", &["Learner"]).await;
    assert_eq!(landing(&tool, &learner, res).await, "/courses/fire-safety");
    let (status, page) = get(&learner, format!("{}/courses/fire-safety", tool.base)).await;
    assert_eq!(status, 200);
    assert!(page.contains("Fire safety"));

    // The mapping is audited: who, what, which platform and context.
    let entries = tool
        .store
        .read_blocking(|tx| {
            coursegate_store::repo::audit::list(
                tx,
                &coursegate_store::repo::audit::AuditFilter {
                    action: Some("lti.resource_link.mapped".into()),
                    ..Default::default()
                },
                coursegate_store::repo::Page {
                    limit: 10,
                    offset: 0,
                },
            )
        })
        .unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.actor_kind, "lti");
    let teacher_id = tool
        .store
        .read_blocking(|tx| {
            coursegate_core::learners::resolve(
                tx,
                &coursegate_core::learners::IdentityRef::Lti {
                    issuer: coursegate_lti::testing::ISSUER.into(),
                    client_id: coursegate_lti::testing::CLIENT_ID.into(),
                    sub: "teacher-1".into(),
                },
            )
        })
        .unwrap()
        .map(|l| l.id);
    assert_eq!(e.actor_id, teacher_id);
    let detail: Value = serde_json::from_str(&e.detail).unwrap();
    assert_eq!(detail["course"], "fire-safety");
    assert_eq!(detail["resource_link_id"], LINK);
    assert_eq!(detail["context_id"], "ctx-1");
    assert!(detail["platform"].as_str().is_some_and(|p| !p.is_empty()));
}

#[actix_web::test]
async fn an_instructor_picks_the_course_of_an_unmapped_link_sqlite() {
    an_instructor_picks_the_course_of_an_unmapped_link(Db::Sqlite).await;
}

#[actix_web::test]
async fn an_instructor_picks_the_course_of_an_unmapped_link_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return crate::common::skip(
            "an_instructor_picks_the_course_of_an_unmapped_link_postgres",
            "TEST_DATABASE_URL is not set",
        );
    };
    an_instructor_picks_the_course_of_an_unmapped_link(db).await;
}

fn audit_of(tool: &Tool, action: &str) -> Vec<coursegate_store::models::AuditEntry> {
    let action = action.to_string();
    tool.store
        .read_blocking(move |tx| {
            coursegate_store::repo::audit::list(
                tx,
                &coursegate_store::repo::audit::AuditFilter {
                    action: Some(action),
                    ..Default::default()
                },
                coursegate_store::repo::Page {
                    limit: 10,
                    offset: 0,
                },
            )
        })
        .unwrap()
}

async fn staff_connect_and_move_a_resource_link(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    more_courses(&tool);
    // The instructor launched once and left without picking.
    let (teacher, res) = launch(&tool, "teacher-1", &[INSTRUCTOR]).await;
    let picker = landing(&tool, &teacher, res).await;
    let (_, page) = get(&teacher, format!("{}{picker}", tool.base)).await;
    let teacher_csrf = csrf_of(&page);
    let (_, res) = launch(&tool, "learner-1", &["Learner"]).await;
    assert_refused(res, "course_not_set_up", "before staff connect it").await;

    let pid = crate::platform_edits::platform_id(&tool);
    let row = tool
        .store
        .read_blocking({
            let pid = pid.clone();
            move |tx| {
                coursegate_store::repo::lti::find_resource_link(
                    tx,
                    &pid,
                    coursegate_lti::testing::DEPLOYMENT_ID,
                    LINK,
                )
            }
        })
        .unwrap()
        .unwrap()
        .id;
    let staff = crate::platform_edits::staff_client(&tool);
    let detail = format!("{}/staff/lms/{pid}", tool.base);
    let (status, page) = get(&staff, detail.clone()).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("data-link=\"{LINK}\"")), "{page}");
    assert!(page.contains("<em>not set up</em>"), "{page}");
    let csrf = csrf_of(&page);
    let action = format!("{}/staff/lms/{pid}/links/{row}", tool.base);

    // CSRF, then the course, are checked.
    let res = staff
        .post(&action)
        .form(&[("course", "intro")])
        .send()
        .await
        .unwrap();
    assert_refused(res, "csrf_failed", "no CSRF token").await;
    let res = staff
        .post(&action)
        .form(&[("csrf", csrf.as_str()), ("course", "draft")])
        .send()
        .await
        .unwrap();
    assert_refused(res, "course_unknown", "an unpublished course").await;

    // Connected by staff: the learner's next launch opens it.
    let res = staff
        .post(&action)
        .form(&[("csrf", csrf.as_str()), ("course", "intro")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, page) = get(&staff, detail.clone()).await;
    assert!(page.contains("<td class=\"course\">Intro</td>"), "{page}");
    let (learner, res) = launch(&tool, "learner-1", &["Learner"]).await;
    assert_eq!(landing(&tool, &learner, res).await, "/courses/intro");

    // The instructor's old picker may no longer connect it.
    let res = pick(
        &tool,
        &teacher,
        &picker,
        &[
            ("csrf", &teacher_csrf),
            ("k", &k_of(&picker)),
            ("course", "fire-safety"),
        ],
    )
    .await;
    assert_refused(
        res,
        "resource_link_already_mapped",
        "after staff connected it",
    )
    .await;

    // Staff may move it.
    let res = staff
        .post(&action)
        .form(&[("csrf", csrf.as_str()), ("course", "fire-safety")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (learner, res) = launch(&tool, "learner-1", &["Learner"]).await;
    assert_eq!(landing(&tool, &learner, res).await, "/courses/fire-safety");
    let mapped = audit_of(&tool, "lti.resource_link.mapped");
    assert_eq!(mapped.len(), 2);
    assert!(mapped.iter().all(|e| e.actor_kind == "staff"));
    let newest: Value = serde_json::from_str(&mapped[0].detail).unwrap();
    assert_eq!(newest["course"], "fire-safety");
    assert_eq!(newest["previous_course"], "intro");
    assert_eq!(newest["resource_link_id"], LINK);

    // And disconnect it: learners are told again.
    let res = staff
        .post(&action)
        .form(&[("csrf", csrf.as_str()), ("course", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(audit_of(&tool, "lti.resource_link.unmapped").len(), 1);
    let (_, res) = launch(&tool, "learner-1", &["Learner"]).await;
    assert_refused(res, "course_not_set_up", "after staff disconnected it").await;
}

#[actix_web::test]
async fn staff_connect_and_move_a_resource_link_sqlite() {
    staff_connect_and_move_a_resource_link(Db::Sqlite).await;
}

#[actix_web::test]
async fn staff_connect_and_move_a_resource_link_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return crate::common::skip(
            "staff_connect_and_move_a_resource_link_postgres",
            "TEST_DATABASE_URL is not set",
        );
    };
    staff_connect_and_move_a_resource_link(db).await;
}

/// Without cookies the launch's session is handed to a new one (frame
/// session in the path, or the new-window ticket); the picker's key follows.
#[actix_web::test]
async fn the_picker_key_follows_the_session_into_a_frame_or_a_new_window() {
    for frame_sessions in [true, false] {
        let tool = Tool::start(Opts {
            frame_sessions,
            ..Default::default()
        })
        .await;
        let (client, picker) = launch_without_cookies(&tool, |tool, nonce| {
            tool.minter(nonce)
                .roles(&[INSTRUCTOR])
                .claim("sub", "teacher-1")
                .claim(&claim("custom"), json!({}))
                .claim(&claim("resource_link"), json!({"id": LINK}))
                .mint()
        })
        .await;
        assert!(picker.contains("/lti/unmapped/"), "{picker}");
        assert_eq!(picker.starts_with("/f/"), frame_sessions, "{picker}");
        let (status, page) = get(&client, format!("{}{picker}", tool.base)).await;
        assert_eq!(status, 200, "{frame_sessions}: {page}");
        let csrf = csrf_of(&page);
        let res = pick(
            &tool,
            &client,
            &picker,
            &[("csrf", &csrf), ("k", &k_of(&picker)), ("course", "intro")],
        )
        .await;
        assert_eq!(
            res.status(),
            303,
            "{}",
            res.text().await.unwrap_or_default()
        );
        let view = res.headers()["location"].to_str().unwrap().to_string();
        assert!(view.contains("/lti/instructor/"), "{view}");
        assert_eq!(view.starts_with("/f/"), frame_sessions, "{view}");
        let (status, page) = get(&client, format!("{}{view}", tool.base)).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Instructor view"), "{page}");
    }
}
