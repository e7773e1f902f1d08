//! Assignment and Grade Services end to end: a learner launched with an AGS
//! claim completes the course in the browser, and the score worker (driven
//! pass by pass with the manual clock) posts the grade to the test platform
//! through the outbox, with an access token cached in the database.

use coursegate_server::workers::{deliver_due_scores, ScorePass, ScoreWorker};
use coursegate_store::repo;
use serde_json::json;

use crate::common::{claim, cookie_client, Db, Opts, Tool};

const AGS_CLAIM: &str = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint";

fn ags_claim(tool: &Tool) -> serde_json::Value {
    json!({
        "scope": [
            "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
            "https://purl.imsglobal.org/spec/lti-ags/scope/score",
        ],
        "lineitems": tool.platform.lineitems_url,
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

/// Launches learner `sub` (own cookie jar) with an AGS claim and completes
/// the only lesson of the course through the learner pages.
pub(crate) async fn launch_and_complete(tool: &Tool, sub: &str) {
    launch_and_complete_with(tool, sub, ags_claim(tool)).await
}

async fn launch_and_complete_with(tool: &Tool, sub: &str, ags: serde_json::Value) {
    let client = cookie_client();
    let (state, nonce) = tool.login_at(&client, &tool.base).await;
    let token = tool
        .minter(&nonce)
        .claim("sub", sub)
        .claim(AGS_CLAIM, ags)
        .claim(&claim("custom"), json!({"course": "intro"}))
        .mint();
    let res = tool.launch_at(&client, &tool.base, &token, &state).await;
    let to = tool.follow_to_course(&client, &tool.base, res).await;
    assert_eq!(to, "/courses/intro");
    let course = client
        .get(format!("{}/courses/intro", tool.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let k = "/courses/intro/lessons/";
    let i = course.find(k).expect("a lesson link") + k.len();
    let lesson = &course[i..i + course[i..].find('"').unwrap()];
    let url = format!("{}/courses/intro/lessons/{lesson}", tool.base);
    let page = client.get(&url).send().await.unwrap().text().await.unwrap();
    let res = client
        .post(format!("{url}/complete"))
        .form(&[("csrf", csrf_of(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "/courses/intro?completed=1"
    );
}

async fn pass(tool: &Tool, w: &ScoreWorker) -> ScorePass {
    deliver_due_scores(&tool.state, w).await.unwrap()
}

fn score_rows(tool: &Tool) -> Vec<coursegate_store::models::OutboxMessage> {
    tool.store
        .read_blocking(|tx| repo::outbox::by_topic(tx, coursegate_core::ags::TOPIC_SCORE))
        .unwrap()
}

async fn completion_posts_one_fully_graded_score(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    let w = ScoreWorker::default();
    launch_and_complete(&tool, "lms-user-42").await;
    // Queued in the completion's transaction, nothing sent yet.
    let rows = score_rows(&tool);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, "pending");
    assert!(tool.platform.services.lock().unwrap().scores.is_empty());

    assert_eq!(
        pass(&tool, &w).await,
        ScorePass {
            sent: 1,
            ..Default::default()
        }
    );
    {
        let sv = tool.platform.services.lock().unwrap();
        assert!(sv.refusals.is_empty(), "{:?}", sv.refusals);
        assert!(sv.token_refusals.is_empty(), "{:?}", sv.token_refusals);
        assert_eq!(sv.lineitems.len(), 1, "the line item was created");
        assert_eq!(sv.lineitems[0]["resourceLinkId"], "rl-1");
        assert_eq!(sv.lineitems[0]["resourceId"], "intro");
        assert_eq!(sv.lineitems[0]["scoreMaximum"], 100.0);
        assert_eq!(sv.scores.len(), 1);
        let (n, s) = &sv.scores[0];
        assert_eq!(*n, 1);
        assert_eq!(s["userId"], "lms-user-42");
        assert_eq!(s["gradingProgress"], "FullyGraded");
        assert_eq!(s["activityProgress"], "Completed");
        assert_eq!(s["scoreGiven"], 100.0);
        assert_eq!(s["scoreMaximum"], 100.0);
        // RFC 3339 with microseconds.
        let ts = s["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('.'), "{ts}");
    }
    assert_eq!(score_rows(&tool)[0].status, "sent");
    // The line item is remembered on the resource link.
    let links = tool
        .store
        .read_blocking(|tx| {
            let p = repo::lti::find_platform(
                tx,
                coursegate_lti::testing::ISSUER,
                coursegate_lti::testing::CLIENT_ID,
            )?
            .unwrap();
            repo::lti::find_resource_link(tx, &p.id, coursegate_lti::testing::DEPLOYMENT_ID, "rl-1")
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        links.lineitem_url.as_deref(),
        Some(
            format!(
                "http://127.0.0.1:{}/lineitems/1/lineitem",
                tool.platform.port
            )
            .as_str()
        )
    );
    // Exactly once: later passes find nothing to do.
    assert_eq!(pass(&tool, &w).await, ScorePass::default());
    tool.manual.advance(chrono::Duration::hours(2));
    assert_eq!(pass(&tool, &w).await, ScorePass::default());
    assert_eq!(tool.platform.services.lock().unwrap().scores.len(), 1);
}

#[tokio::test]
async fn completion_posts_one_fully_graded_score_sqlite() {
    completion_posts_one_fully_graded_score(Db::Sqlite).await;
}

#[tokio::test]
async fn completion_posts_one_fully_graded_score_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return crate::common::skip(
            "completion_posts_one_fully_graded_score_postgres",
            "TEST_DATABASE_URL is not set",
        );
    };
    completion_posts_one_fully_graded_score(db).await;
}

async fn platform_down_then_up_delivers_once(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    let w = ScoreWorker::default();
    launch_and_complete(&tool, "u-down").await;
    tool.platform.services.lock().unwrap().down = true;
    assert_eq!(
        pass(&tool, &w).await,
        ScorePass {
            retry: 1,
            ..Default::default()
        }
    );
    let row = &score_rows(&tool)[0];
    assert_eq!(row.status, "pending");
    assert_eq!(row.attempts, 1);
    assert!(
        row.last_error.as_deref().unwrap_or("").contains("503"),
        "{row:?}"
    );
    // Not due again before its back-off, even once the platform is back.
    tool.platform.services.lock().unwrap().down = false;
    assert_eq!(pass(&tool, &w).await, ScorePass::default());
    tool.manual
        .advance(w.backoff(1) + chrono::Duration::seconds(1));
    assert_eq!(
        pass(&tool, &w).await,
        ScorePass {
            sent: 1,
            ..Default::default()
        }
    );
    tool.manual.advance(chrono::Duration::hours(2));
    assert_eq!(pass(&tool, &w).await, ScorePass::default());
    let sv = tool.platform.services.lock().unwrap();
    assert_eq!(sv.scores.len(), 1, "{:?}", sv.scores);
    assert_eq!(sv.scores[0].1["userId"], "u-down");
}

#[tokio::test]
async fn platform_down_then_up_delivers_once_sqlite() {
    platform_down_then_up_delivers_once(Db::Sqlite).await;
}

#[tokio::test]
async fn platform_down_then_up_delivers_once_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return crate::common::skip(
            "platform_down_then_up_delivers_once_postgres",
            "TEST_DATABASE_URL is not set",
        );
    };
    platform_down_then_up_delivers_once(db).await;
}

#[tokio::test]
async fn the_access_token_is_reused_from_the_database_across_scores() {
    let tool = Tool::start(Opts::default()).await;
    let w = ScoreWorker::default();
    launch_and_complete(&tool, "learner-a").await;
    assert_eq!(pass(&tool, &w).await.sent, 1);
    launch_and_complete(&tool, "learner-b").await;
    // Later, but well before the token's expiry minus the margin.
    tool.manual.advance(chrono::Duration::minutes(30));
    assert_eq!(pass(&tool, &w).await.sent, 1);
    {
        let sv = tool.platform.services.lock().unwrap();
        assert_eq!(sv.token_hits, 1, "one token request for both scores");
        assert_eq!(sv.scores.len(), 2);
        assert_eq!(sv.scores[0].1["userId"], "learner-a");
        assert_eq!(sv.scores[1].1["userId"], "learner-b");
        assert_eq!(
            sv.lineitems.len(),
            1,
            "the second score reused the line item"
        );
    }
    // After the token expires, a new one (with a fresh jti) is requested.
    launch_and_complete(&tool, "learner-c").await;
    tool.manual.advance(chrono::Duration::hours(1));
    assert_eq!(pass(&tool, &w).await.sent, 1);
    let sv = tool.platform.services.lock().unwrap();
    assert_eq!(sv.token_hits, 2);
    assert!(sv.token_refusals.is_empty(), "{:?}", sv.token_refusals);
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_once_on_401() {
    let tool = Tool::start(Opts::default()).await;
    let w = ScoreWorker::default();
    launch_and_complete(&tool, "learner-a").await;
    assert_eq!(pass(&tool, &w).await.sent, 1);
    // The platform forgets every token it issued.
    tool.platform.services.lock().unwrap().tokens.clear();
    launch_and_complete(&tool, "learner-b").await;
    assert_eq!(pass(&tool, &w).await.sent, 1);
    let sv = tool.platform.services.lock().unwrap();
    assert_eq!(sv.token_hits, 2);
    assert_eq!(sv.scores.len(), 2);
    assert_eq!(sv.refusals.len(), 1, "{:?}", sv.refusals);
}

#[tokio::test]
async fn a_launch_without_the_score_scope_queues_nothing() {
    let tool = Tool::start(Opts::default()).await;
    let ags = json!({"scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"],
                     "lineitems": tool.platform.lineitems_url});
    launch_and_complete_with(&tool, "no-score", ags).await;
    assert!(score_rows(&tool).is_empty());
    // The completion itself was recorded as usual.
    let events = tool
        .store
        .read_blocking(|tx| repo::outbox::by_topic(tx, "course.completed"))
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn a_409_for_a_timestamp_that_is_not_newer_counts_as_delivered() {
    let tool = Tool::start(Opts::default()).await;
    let w = ScoreWorker::default();
    {
        // The LMS already holds a later score for this learner (Moodle answers 409).
        let mut sv = tool.platform.services.lock().unwrap();
        let base = format!("http://127.0.0.1:{}", tool.platform.port);
        sv.lineitems.push(json!({
            "id": format!("{base}/lineitems/1/lineitem"), "label": "Intro",
            "scoreMaximum": 100.0, "resourceId": "intro", "resourceLinkId": "rl-1",
        }));
        sv.scores.push((
            1,
            json!({"userId": "u-409", "timestamp": "2099-01-01T00:00:00.000000Z",
                   "activityProgress": "Completed", "gradingProgress": "FullyGraded"}),
        ));
    }
    launch_and_complete(&tool, "u-409").await;
    assert_eq!(
        pass(&tool, &w).await,
        ScorePass {
            sent: 1,
            ..Default::default()
        }
    );
    let row = &score_rows(&tool)[0];
    assert_eq!(row.status, "sent");
    assert_eq!(
        row.last_error.as_deref(),
        Some("409: the platform holds a newer score")
    );
    let sv = tool.platform.services.lock().unwrap();
    assert_eq!(sv.lineitems.len(), 1, "the existing line item was found");
    assert_eq!(sv.scores.len(), 1);
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {s}"))
        + start.len();
    let j = s[i..].find(end).unwrap() + i;
    &s[i..j]
}

/// The LMS refuses grades (a permanent 4xx): the score goes dead; the
/// staff LMS page lists it with the LMS's answer; after the LMS is fixed,
/// "Send again" (POST, CSRF, owner/admin, audited) requeues it and the
/// worker delivers it, once.
async fn dead_scores_are_listed_and_replayed_once(db: Db) {
    let tool = Tool::start(Opts {
        db,
        ..Default::default()
    })
    .await;
    let w = ScoreWorker::default();
    tool.platform.services.lock().unwrap().score_refusal = Some((
        400,
        "User lms-user-dead is not gradable in this course".into(),
    ));
    launch_and_complete(&tool, "lms-user-dead").await;
    assert_eq!(
        pass(&tool, &w).await,
        ScorePass {
            dead: 1,
            ..Default::default()
        }
    );
    let row = score_rows(&tool).remove(0);
    assert_eq!(row.status, "dead");

    let platform_id = tool
        .store
        .read_blocking(|tx| {
            repo::lti::find_platform(
                tx,
                coursegate_lti::testing::ISSUER,
                coursegate_lti::testing::CLIENT_ID,
            )
        })
        .unwrap()
        .unwrap()
        .id;
    let admin = tool.staff("admin");
    let url = format!("{}/staff/lms/{platform_id}", tool.base);
    let page = admin.get(&url).send().await.unwrap().text().await.unwrap();
    let list = between(&page, "id=\"dead-score-list\"", "</table>");
    assert!(
        list.contains(&format!("data-outbox=\"{}\"", row.id)),
        "{list}"
    );
    assert!(list.contains("<code>lms-user-dead</code>"), "{list}");
    assert!(
        list.contains("HTTP 400: User lms-user-dead is not gradable in this course"),
        "the LMS's answer: {list}"
    );
    assert!(list.contains("100 of 100 · FullyGraded"), "{list}");
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();
    let replay = format!("{url}/scores/replay");

    // Refusals: no CSRF token, a role that may not replay, an unknown row.
    let res = admin
        .post(&replay)
        .form(&[("outbox_id", row.id.as_str())])
        .send()
        .await
        .unwrap();
    crate::common::assert_refused(res, "csrf_failed", "replay without csrf").await;
    let support = tool.staff("support");
    let spage = support
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(spage.contains("lms-user-dead"), "support sees dead grades");
    assert!(
        !spage.contains("/scores/replay"),
        "but gets no replay button"
    );
    let scsrf = between(&spage, "name=\"csrf\" value=\"", "\"").to_string();
    let res = support
        .post(&replay)
        .form(&[("csrf", scsrf.as_str()), ("outbox_id", row.id.as_str())])
        .send()
        .await
        .unwrap();
    crate::common::assert_refused(res, "forbidden", "support replaying").await;
    let res = admin
        .post(&replay)
        .form(&[("csrf", csrf.as_str()), ("outbox_id", "no-such-row")])
        .send()
        .await
        .unwrap();
    crate::common::assert_refused(res, "score_not_dead", "replay of an unknown row").await;
    assert_eq!(score_rows(&tool)[0].status, "dead");

    // The LMS is fixed; the admin sends it again.
    tool.platform.services.lock().unwrap().score_refusal = None;
    let res = admin
        .post(&replay)
        .form(&[("csrf", csrf.as_str()), ("outbox_id", row.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        back,
        format!("/staff/lms/{platform_id}?replayed=1#dead-scores")
    );
    let page = admin
        .get(format!("{}{back}", tool.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("1 grade update(s) queued again"), "{page}");
    assert!(!page.contains("id=\"dead-score-list\""), "none dead now");
    assert_eq!(
        pass(&tool, &w).await,
        ScorePass {
            sent: 1,
            ..Default::default()
        }
    );
    assert_eq!(pass(&tool, &w).await, ScorePass::default());
    assert_eq!(score_rows(&tool)[0].status, "sent");
    // Replaying again: nothing dead any more.
    let res = admin
        .post(&replay)
        .form(&[("csrf", csrf.as_str()), ("outbox_id", row.id.as_str())])
        .send()
        .await
        .unwrap();
    crate::common::assert_refused(res, "score_not_dead", "replay of a sent row").await;
    tool.manual.advance(chrono::Duration::hours(2));
    assert_eq!(pass(&tool, &w).await, ScorePass::default());
    {
        let sv = tool.platform.services.lock().unwrap();
        assert_eq!(sv.scores.len(), 1, "delivered once: {:?}", sv.scores);
        assert_eq!(sv.scores[0].1["userId"], "lms-user-dead");
    }
    // Audited, with who did it.
    let audit = tool
        .store
        .read_blocking(|tx| {
            repo::audit::list(
                tx,
                &repo::audit::AuditFilter {
                    action: Some("lti.score.replayed".into()),
                    ..Default::default()
                },
                repo::Page {
                    limit: 10,
                    offset: 0,
                },
            )
        })
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].actor_kind, "staff");
    assert!(audit[0].detail.contains(&row.id), "{:?}", audit[0]);
}

#[tokio::test]
async fn dead_scores_are_listed_and_replayed_once_sqlite() {
    dead_scores_are_listed_and_replayed_once(Db::Sqlite).await;
}

#[tokio::test]
async fn dead_scores_are_listed_and_replayed_once_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return crate::common::skip(
            "dead_scores_are_listed_and_replayed_once_postgres",
            "TEST_DATABASE_URL is not set",
        );
    };
    dead_scores_are_listed_and_replayed_once(db).await;
}

/// A platform registered as Canvas gets Canvas's optional submission
/// extension on its scores: a completion is a new submission, dated by the
/// score's timestamp. Others get the plain AGS score.
#[tokio::test]
async fn canvas_scores_carry_the_submission_extension() {
    let tool = Tool::start(Opts::default()).await;
    let w = ScoreWorker::default();
    launch_and_complete(&tool, "plain-user").await;
    assert_eq!(pass(&tool, &w).await.sent, 1);
    tool.store
        .write_blocking(|tx| {
            let mut p = repo::lti::find_platform(
                tx,
                coursegate_lti::testing::ISSUER,
                coursegate_lti::testing::CLIENT_ID,
            )?
            .unwrap();
            p.lms = Some("canvas".into());
            repo::lti::update_platform(tx, &p)
        })
        .unwrap();
    launch_and_complete(&tool, "canvas-user").await;
    assert_eq!(pass(&tool, &w).await.sent, 1);
    let sv = tool.platform.services.lock().unwrap();
    assert!(sv.refusals.is_empty(), "{:?}", sv.refusals);
    let ext = "https://canvas.instructure.com/lti/submission";
    assert!(sv.scores[0].1.get(ext).is_none(), "{:?}", sv.scores[0]);
    let s = &sv.scores[1].1;
    assert_eq!(s["userId"], "canvas-user");
    assert_eq!(s[ext]["new_submission"], true);
    assert_eq!(s[ext]["submitted_at"], s["timestamp"]);
    assert!(s["timestamp"].as_str().unwrap().contains('.'));
}
