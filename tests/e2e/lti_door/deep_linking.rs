//! Deep Linking of a single lesson: the instructor's catalogue lists each
//! course's lessons; picking one answers a signed LtiDeepLinkingResponse
//! whose item carries the course and the lesson in `custom` (the registered
//! launch URL unchanged, no line item); a learner launching that item is
//! enrolled in the course and lands on the lesson in the course player.

use coursegate_core::courses::{self, NewLesson};
use coursegate_lti::testing;
use coursegate_store::repo;
use serde_json::{json, Value};

use crate::common::{
    assert_refused, claim, cookie_client, launch_without_cookies, Db, Opts, Tool, INSTRUCTOR,
};

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {s}"))
        + start.len();
    let j = s[i..].find(end).unwrap() + i;
    &s[i..j]
}

fn unescape(s: &str) -> String {
    s.replace("&#x2F;", "/").replace("&amp;", "&")
}

/// Adds a second lesson to the course `intro`; returns its id.
fn add_second_lesson(tool: &Tool) -> String {
    let now = tool.clock.now();
    tool.store
        .write_blocking(move |tx| {
            let c = courses::by_slug(tx, "intro")?;
            courses::add_lesson(
                tx,
                now,
                &c.id,
                NewLesson::from_markdown("# Loops\n\nRound and round", "Loops"),
            )
        })
        .unwrap()
        .id
}

/// An instructor Deep Linking launch; returns the browser and the picker path.
async fn open_picker(tool: &Tool) -> (reqwest::Client, String) {
    let client = cookie_client();
    let (state, nonce) = tool.login_at(&client, &tool.base).await;
    let token = tool
        .minter(&nonce)
        .roles(&[INSTRUCTOR])
        .deep_linking(testing::RETURN_URL, Some("dl-data-9"))
        .mint();
    let res = tool.launch_at(&client, &tool.base, &token, &state).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let cont = res.headers()["location"].to_str().unwrap().to_string();
    let res = client
        .get(format!("{}{cont}", tool.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let picker = res.headers()["location"].to_str().unwrap().to_string();
    assert!(picker.starts_with("/lti/deep-link/"), "{picker}");
    (client, picker)
}

/// The content items of a signed response, verified with the tool's JWKS.
async fn items_of(tool: &Tool, body: &str) -> Vec<Value> {
    let jwt = unescape(between(body, "name=\"JWT\" value=\"", "\""));
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", tool.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = coursegate_lti::token::PlatformKeys::from_jwks(
        &coursegate_lti::token::PlatformKeys::parse_jwks_lenient(&jwks),
    );
    let claims = coursegate_lti::token::verify_signature(&jwt, &keys).unwrap();
    assert_eq!(
        claims["https://purl.imsglobal.org/spec/lti/claim/message_type"],
        "LtiDeepLinkingResponse"
    );
    assert_eq!(
        claims["https://purl.imsglobal.org/spec/lti-dl/claim/data"],
        "dl-data-9"
    );
    claims["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn a_single_lesson_is_linked_and_opens_in_the_course(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    let loops = add_second_lesson(&tool);
    let (instructor, picker) = open_picker(&tool).await;
    let page = instructor
        .get(format!("{}{picker}", tool.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page_u = unescape(&page);
    assert!(page_u.contains("value=\"intro\""), "{page}");
    assert!(
        page_u.contains(&format!("name=\"lesson\" value=\"intro/{loops}\"")),
        "{page}"
    );
    assert!(page.contains("Loops"));
    // Searching by a lesson title finds its course.
    let found = instructor
        .get(format!("{}{picker}?q=loops", tool.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(unescape(&found).contains(&format!("intro/{loops}")));
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();

    let post = |form: Vec<(&'static str, String)>| {
        let (c, url) = (instructor.clone(), format!("{}{picker}", tool.base));
        async move { c.post(url).form(&form).send().await.unwrap() }
    };
    // A course and a lesson together, two lessons, nothing, a lesson of no
    // course: refused with the exact reason, the request stays open.
    for (form, code) in [
        (
            vec![
                ("csrf", csrf.clone()),
                ("course", "intro".into()),
                ("lesson", format!("intro/{loops}")),
            ],
            "deep_link_pick_invalid",
        ),
        (
            vec![
                ("csrf", csrf.clone()),
                ("lesson", format!("intro/{loops}")),
                ("lesson", format!("intro/{loops}")),
            ],
            "deep_link_pick_invalid",
        ),
        (vec![("csrf", csrf.clone())], "deep_link_pick_invalid"),
        (
            vec![("csrf", csrf.clone()), ("lesson", "intro/no-such".into())],
            "lesson_not_found",
        ),
        (
            vec![("csrf", csrf.clone()), ("lesson", format!("nope/{loops}"))],
            "course_not_found",
        ),
    ] {
        assert_refused(post(form).await, code, code).await;
    }
    // Without the CSRF token.
    let res = post(vec![("lesson", format!("intro/{loops}"))]).await;
    assert_refused(res, "csrf_failed", "lesson pick without csrf").await;

    let res = post(vec![
        ("csrf", csrf.clone()),
        ("lesson", format!("intro/{loops}")),
    ])
    .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert_eq!(
        unescape(between(&body, "action=\"", "\"")),
        testing::RETURN_URL
    );
    let items = items_of(&tool, &body).await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["type"], "ltiResourceLink");
    assert_eq!(
        item["url"],
        tool.launch_url(),
        "the registered URL, unchanged"
    );
    assert_eq!(item["custom"], json!({"course": "intro", "lesson": loops}));
    assert_eq!(item["title"], "Intro · Loops");
    assert!(item.get("lineItem").is_none(), "{item}");
    // Single use, as for courses.
    let res = post(vec![
        ("csrf", csrf.clone()),
        ("lesson", format!("intro/{loops}")),
    ])
    .await;
    assert_refused(res, "deep_link_request_used", "second answer").await;

    // The LMS launches the item with its custom parameters: the learner is
    // enrolled in the course and lands on the lesson.
    let learner = cookie_client();
    let (state, nonce) = tool.login_at(&learner, &tool.base).await;
    let token = tool
        .minter(&nonce)
        .claim("sub", "lesson-learner")
        .claim(
            &claim("resource_link"),
            json!({"id": "rl-lesson", "title": "Loops"}),
        )
        .claim(&claim("custom"), item["custom"].clone())
        .mint();
    let res = tool.launch_at(&learner, &tool.base, &token, &state).await;
    let to = tool.follow_to_course(&learner, &tool.base, res).await;
    assert_eq!(to, format!("/courses/intro/lessons/{loops}"));
    let lesson = learner
        .get(format!("{}{to}", tool.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(lesson.contains("Round and round"), "{lesson}");
    let enrolled = tool
        .store
        .read_blocking(|tx| {
            let c = repo::courses::get_by_slug(tx, "intro")?.unwrap();
            repo::enrolments::of_course(tx, &c.id)
        })
        .unwrap();
    assert_eq!(enrolled.len(), 1);
    assert_eq!(enrolled[0].source, "lti");
    assert_eq!(enrolled[0].status, "active");

    // A lesson removed (or of another course) since the link was made: the
    // course page instead.
    let (state, nonce) = tool.login_at(&learner, &tool.base).await;
    let token = tool
        .minter(&nonce)
        .claim("sub", "lesson-learner")
        .claim(&claim("resource_link"), json!({"id": "rl-lesson-2"}))
        .claim(
            &claim("custom"),
            json!({"course": "intro", "lesson": "gone"}),
        )
        .mint();
    let res = tool.launch_at(&learner, &tool.base, &token, &state).await;
    assert_eq!(
        tool.follow_to_course(&learner, &tool.base, res).await,
        "/courses/intro"
    );
}

#[actix_web::test]
async fn a_single_lesson_is_linked_and_opens_in_the_course_sqlite() {
    a_single_lesson_is_linked_and_opens_in_the_course(Db::Sqlite).await;
}

#[actix_web::test]
async fn a_single_lesson_is_linked_and_opens_in_the_course_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return crate::common::skip(
            "a_single_lesson_is_linked_and_opens_in_the_course_postgres",
            "TEST_DATABASE_URL is not set",
        );
    };
    a_single_lesson_is_linked_and_opens_in_the_course(db).await;
}

#[actix_web::test]
async fn several_courses_are_still_linked_with_line_items() {
    let tool = Tool::start(Opts::default()).await;
    let now = tool.clock.now();
    tool.store
        .write_blocking(move |tx| {
            courses::create(
                tx,
                now,
                courses::NewCourse {
                    slug: coursegate_core::types::Slug::parse("ungraded").unwrap(),
                    title: "Ungraded".into(),
                    summary: "Just reading".into(),
                    published: true,
                    graded: false,
                    link_policy: courses::LinkPolicy::Access,
                    default_access_days: None,
                    lessons: vec![NewLesson::from_markdown("# Read\n\nText", "Read")],
                },
            )
        })
        .unwrap();
    let (instructor, picker) = open_picker(&tool).await;
    let page = instructor
        .get(format!("{}{picker}", tool.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();
    let res = instructor
        .post(format!("{}{picker}", tool.base))
        .form(&[
            ("csrf", csrf.as_str()),
            ("course", "intro"),
            ("course", "ungraded"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let items = items_of(&tool, &res.text().await.unwrap()).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["custom"], json!({"course": "intro"}));
    assert_eq!(items[0]["lineItem"]["scoreMaximum"], 100.0);
    assert_eq!(items[0]["lineItem"]["resourceId"], "intro");
    assert_eq!(items[1]["custom"], json!({"course": "ungraded"}));
    assert_eq!(items[1]["text"], "Just reading");
    assert!(items[1].get("lineItem").is_none());
}

/// A Deep Linking launch in a frame that keeps no cookie continues in a
/// frame session (path) or in a new window (ticket); the content selection
/// moves with it, so the instructor can still pick and answer the LMS.
#[actix_web::test]
async fn the_selection_follows_the_session_into_a_frame_or_a_new_window() {
    for frame_sessions in [true, false] {
        let tool = Tool::start(Opts {
            frame_sessions,
            ..Default::default()
        })
        .await;
        let (client, picker) = launch_without_cookies(&tool, |tool, nonce| {
            tool.minter(nonce)
                .roles(&[INSTRUCTOR])
                .deep_linking(testing::RETURN_URL, Some("dl-data-9"))
                .mint()
        })
        .await;
        assert!(picker.contains("/lti/deep-link/"), "{picker}");
        assert_eq!(picker.starts_with("/f/"), frame_sessions, "{picker}");
        let res = client
            .get(format!("{}{picker}", tool.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{frame_sessions}");
        let page = res.text().await.unwrap();
        let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();
        let res = client
            .post(format!("{}{picker}", tool.base))
            .form(&[("csrf", csrf.as_str()), ("course", "intro")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{frame_sessions}");
        let items = items_of(&tool, &res.text().await.unwrap()).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["custom"], json!({"course": "intro"}));
    }
}
