//! The shared core through the learner pages, over real HTTP against the
//! running server: access rules, progress and completion, the outbox rows each
//! change writes, sessions, CSRF and bad input. Every rejection asserts its
//! exact reason code (the `X-Error-Code` header and the page).

use chrono::Duration;
use coursegate_testkit::{assert_page_error, csrf_of, each_backend, error_code, TestApp};

async fn text(c: &reqwest::Client, url: String) -> String {
    let res = c.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {url}");
    res.text().await.unwrap()
}

async fn post_form(c: &reqwest::Client, url: String, form: &[(&str, &str)]) -> reqwest::Response {
    c.post(url).form(form).send().await.unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_string()
}

each_backend! {
    async fn access_rules_each_have_their_reason(backend) {
        let app = TestApp::spawn_on(backend).await;
        let open = app.seed_course("open", 2).await;
        let draft = app.seed_course_with("draft", 1, false).await;
        let later = app.seed_course("later", 1).await;
        let ended = app.seed_course("ended", 1).await;
        let gone = app.seed_course("gone", 1).await;
        app.seed_course("other", 1).await;
        let l = app.seed_learner("lee@example.com").await;
        app.enrol(&l, &open).await;
        app.enrol(&l, &draft).await;
        app.enrol_between(&l, &later, Some(Duration::days(3)), None).await;
        app.enrol_between(&l, &ended, None, Some(Duration::days(1))).await;
        let e = app.enrol(&l, &gone).await;
        app.revoke(&e).await;

        // Before the end date the course opens.
        let b = app.sign_in(&l).await;
        assert_eq!(b.get(app.url("/courses/ended")).send().await.unwrap().status(), 200);

        // Two days later it has ended (the session has idled out too: sign in again).
        app.clock.advance(Duration::days(2));
        let b = app.sign_in(&l).await;
        let cases = [
            ("draft", 403, "course_unpublished"),
            ("later", 403, "enrolment_not_started"),
            ("ended", 403, "enrolment_expired"),
            ("gone", 403, "enrolment_revoked"),
            ("other", 403, "not_enrolled"),
            ("no-such-course", 404, "course_not_found"),
        ];
        for (slug, status, reason) in cases {
            let res = b.get(app.url(&format!("/courses/{slug}"))).send().await.unwrap();
            assert_page_error(res, status, reason).await;
        }
        assert_eq!(b.get(app.url("/courses/open")).send().await.unwrap().status(), 200);
        // Lessons of a closed course are closed with the same reason.
        let res = b
            .get(app.url(&format!("/courses/draft/lessons/{}", draft.lessons[0])))
            .send()
            .await
            .unwrap();
        assert_page_error(res, 403, "course_unpublished").await;
        let res = b
            .get(app.url(&format!("/courses/ended/lessons/{}", ended.lessons[0])))
            .send()
            .await
            .unwrap();
        assert_page_error(res, 403, "enrolment_expired").await;
        // A lesson of another course under this course's address is not found.
        let res = b
            .get(app.url(&format!("/courses/open/lessons/{}", later.lessons[0])))
            .send()
            .await
            .unwrap();
        assert_page_error(res, 404, "lesson_not_found").await;

        // The dashboard lists only what is open now.
        let page = text(&b, app.url("/")).await;
        assert!(page.contains("href=\"/courses/open\""), "{page}");
        for hidden in ["draft", "later", "ended", "gone", "other"] {
            assert!(!page.contains(&format!("/courses/{hidden}\"")), "{hidden} on the dashboard");
        }

        // When the start date arrives, the course opens and joins the dashboard.
        app.clock.advance(Duration::days(2));
        let b = app.sign_in(&l).await;
        assert_eq!(b.get(app.url("/courses/later")).send().await.unwrap().status(), 200);
        assert!(text(&b, app.url("/")).await.contains("href=\"/courses/later\""));
    }

    async fn progress_completion_and_the_events_they_write(backend) {
        let app = TestApp::spawn_on(backend).await;
        let c = app.seed_course("safety", 3).await;
        let l = app.seed_learner("pat@example.com").await;
        app.enrol(&l, &c).await;
        assert_eq!(app.outbox_count("enrolment.granted").await, 1);
        assert_eq!(app.outbox_count("course.started").await, 0);
        let b = app.sign_in(&l).await;

        // Opening the course starts it, once.
        let page = text(&b, app.url("/courses/safety")).await;
        assert!(page.contains("0% · 0 of 3 required lessons done"), "{page}");
        text(&b, app.url("/courses/safety")).await;
        assert_eq!(app.outbox_count("course.started").await, 1);

        let lesson = |i: usize| format!("/courses/safety/lessons/{}", c.lessons[i]);
        let page = text(&b, app.url(&lesson(0))).await;
        assert!(page.contains("The text of lesson 1"));
        let csrf = csrf_of(&page);

        // Each completion moves on to the next lesson and records progress.
        let res = post_form(&b, app.url(&format!("{}/complete", lesson(0))), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), lesson(1));
        assert!(text(&b, app.url("/courses/safety")).await.contains("33% · 1 of 3"));
        assert!(text(&b, app.url("/")).await.contains("1 of 3 lessons done"));
        // Completing the same lesson again changes nothing.
        let res = post_form(&b, app.url(&format!("{}/complete", lesson(0))), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), 303);
        assert_eq!(app.outbox_count("lesson.completed").await, 1);

        let res = post_form(&b, app.url(&format!("{}/complete", lesson(1))), &[("csrf", &csrf)]).await;
        assert_eq!(location(&res), lesson(2));
        assert!(text(&b, app.url("/courses/safety")).await.contains("66% · 2 of 3"));
        assert_eq!(app.outbox_count("course.completed").await, 0);

        let res = post_form(&b, app.url(&format!("{}/complete", lesson(2))), &[("csrf", &csrf)]).await;
        assert_eq!(location(&res), "/courses/safety?completed=1");
        let page = text(&b, app.url("/courses/safety?completed=1")).await;
        assert!(page.contains("100% · 3 of 3"));
        assert!(page.contains("You have completed this course"));
        assert!(text(&b, app.url("/")).await.contains("Completed"));

        // The events, each once, in order, versioned and naming the course.
        assert_eq!(app.outbox_count("lesson.completed").await, 3);
        assert_eq!(app.outbox_count("course.completed").await, 1);
        assert_eq!(app.outbox_count("course.started").await, 1);
        let lessons_done = app.outbox("lesson.completed").await;
        let percents: Vec<i64> = lessons_done
            .iter()
            .map(|m| {
                let v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
                assert_eq!(v["version"], 1);
                assert_eq!(v["type"], "lesson.completed");
                assert_eq!(v["data"]["course"], "safety");
                assert_eq!(v["data"]["learner_id"], l.as_str());
                v["data"]["progress_percent"].as_i64().unwrap()
            })
            .collect();
        assert_eq!(percents, [33, 66, 100]);
        for topic in ["enrolment.granted", "course.started", "course.completed"] {
            let m = app.outbox(topic).await.remove(0);
            assert_eq!((m.kind.as_str(), m.status.as_str()), ("event", "pending"), "{topic}");
            let v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
            assert_eq!(v["data"]["course"], "safety", "{topic}");
        }

        // Revoking writes its event and ends access on the next request.
        let e = app
            .read({
                let (l, c) = (l.clone(), c.id.clone());
                move |tx| Ok(coursegate_store::repo::enrolments::find(tx, &l, &c)?)
            })
            .await
            .unwrap();
        app.revoke(&e.id).await;
        assert_eq!(app.outbox_count("enrolment.revoked").await, 1);
        let res = b.get(app.url("/courses/safety")).send().await.unwrap();
        assert_page_error(res, 403, "enrolment_revoked").await;
        let res = post_form(&b, app.url(&format!("{}/complete", lesson(0))), &[("csrf", &csrf)]).await;
        assert_page_error(res, 403, "enrolment_revoked").await;
        assert!(!text(&b, app.url("/")).await.contains("/courses/safety\""));
    }

    async fn missing_forged_and_expired_sessions_are_401(backend) {
        let app = TestApp::spawn_on(backend).await;
        let c = app.seed_course("c1", 1).await;
        let l = app.seed_learner("kim@example.com").await;
        app.enrol(&l, &c).await;

        // No cookie.
        assert_page_error(app.get("/courses/c1").await, 401, "not_signed_in").await;
        // A forged cookie, and a well-formed token the server never issued.
        for forged in ["forged-value", "cgs_short", &coursegate_core::tokens::mint("cgs")] {
            let b = app.browser_with_cookie(forged);
            let res = b.get(app.url("/courses/c1")).send().await.unwrap();
            assert_page_error(res, 401, "not_signed_in").await;
        }
        // Signed-out visitors get the welcome page, not an error.
        let res = app.get("/").await;
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("/signin"));

        // Idle timeout: 8 hours without a request ends the session.
        let b = app.sign_in(&l).await;
        assert_eq!(b.get(app.url("/courses/c1")).send().await.unwrap().status(), 200);
        app.clock.advance(Duration::hours(8) + Duration::seconds(1));
        let res = b.get(app.url("/courses/c1")).send().await.unwrap();
        assert_page_error(res, 401, "session_expired").await;
        // The dashboard treats an expired session as signed out.
        assert_eq!(b.get(app.url("/")).send().await.unwrap().status(), 200);
    }

    async fn csrf_and_malformed_forms_are_refused(backend) {
        let app = TestApp::spawn_on(backend).await;
        let c = app.seed_course("c1", 2).await;
        let l = app.seed_learner("kim@example.com").await;
        app.enrol(&l, &c).await;
        let b = app.sign_in(&l).await;
        let url = app.url(&format!("/courses/c1/lessons/{}/complete", c.lessons[0]));

        // Without a token, with a wrong one, with another session's token.
        let res = post_form(&b, url.clone(), &[("x", "y")]).await;
        assert_page_error(res, 403, "csrf_failed").await;
        let res = post_form(&b, url.clone(), &[("csrf", "AAAA")]).await;
        assert_page_error(res, 403, "csrf_failed").await;
        let other = app.sign_in(&l).await;
        let other_csrf = csrf_of(&text(&other, app.url("/")).await);
        let res = post_form(&b, url.clone(), &[("csrf", &other_csrf)]).await;
        assert_page_error(res, 403, "csrf_failed").await;
        assert_eq!(app.outbox_count("lesson.completed").await, 0);

        // Malformed bodies: a repeated field, a body that is not a form.
        let res = b
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("csrf=a&csrf=b")
            .send()
            .await
            .unwrap();
        assert_page_error(res, 400, "invalid_input").await;
        let res = b
            .post(&url)
            .header("content-type", "application/json")
            .body("{\"csrf\": 1}")
            .send()
            .await
            .unwrap();
        assert_page_error(res, 400, "invalid_input").await;

        // An unknown lesson with a valid token; an unknown route.
        let csrf = csrf_of(&text(&b, app.url("/")).await);
        let res = post_form(
            &b,
            app.url(&format!("/courses/c1/lessons/{}/complete", uuid::Uuid::now_v7())),
            &[("csrf", &csrf)],
        )
        .await;
        assert_page_error(res, 404, "lesson_not_found").await;
        let res = b.get(app.url("/nothing/here")).send().await.unwrap();
        assert_page_error(res, 404, "page_not_found").await;
        assert_page_error(app.get("/courses/c1/lessons").await, 404, "page_not_found").await;

        // The valid token still works after all that.
        let res = post_form(&b, url, &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), 303);
        assert_eq!(app.outbox_count("lesson.completed").await, 1);
    }

    async fn signout_revokes_the_session_on_the_server(backend) {
        let app = TestApp::spawn_on(backend).await;
        let c = app.seed_course("c1", 1).await;
        let l = app.seed_learner("kim@example.com").await;
        app.enrol(&l, &c).await;
        let token = app.start_session(&l).await;
        let b = app.browser_with_cookie(&token);
        let csrf = csrf_of(&text(&b, app.url("/")).await);

        // Signing out needs the CSRF token too.
        let res = post_form(&b, app.url("/signout"), &[]).await;
        assert_page_error(res, 403, "csrf_failed").await;

        let res = post_form(&b, app.url("/signout"), &[("csrf", &csrf)]).await;
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), "/signed-out");
        let cleared = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("cg_session=;"));
        assert!(cleared, "the cookie is cleared");
        assert_eq!(app.get("/signed-out").await.status(), 200);
        // The old token no longer works, even presented again by hand.
        let replay = app.browser_with_cookie(&token);
        let res = replay.get(app.url("/courses/c1")).send().await.unwrap();
        assert_page_error(res, 401, "not_signed_in").await;
    }

    async fn concurrent_writers_all_succeed(backend) {
        let app = TestApp::builder().backend(backend).workers(4).spawn().await;
        let c = app.seed_course("busy", 1).await;
        let lesson = c.lessons[0].clone();
        let mut browsers = Vec::new();
        for i in 0..16 {
            let l = app.seed_learner(&format!("l{i}@example.com")).await;
            app.enrol(&l, &c).await;
            let b = app.sign_in(&l).await;
            let page = text(&b, app.url(&format!("/courses/busy/lessons/{lesson}"))).await;
            browsers.push((b, csrf_of(&page)));
        }
        let url = app.url(&format!("/courses/busy/lessons/{lesson}/complete"));
        let tasks: Vec<_> = browsers
            .into_iter()
            .map(|(b, csrf)| {
                let url = url.clone();
                tokio::spawn(async move {
                    let res = b.post(url).form(&[("csrf", csrf)]).send().await.unwrap();
                    (res.status().as_u16(), error_code(&res))
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), (303, String::new()));
        }
        assert_eq!(app.outbox_count("lesson.completed").await, 16);
        assert_eq!(app.outbox_count("course.completed").await, 16);
        assert_eq!(app.outbox_count("course.started").await, 16);
    }

    async fn dev_signin_only_when_enabled(backend) {
        let app = TestApp::spawn_on(backend.clone()).await;
        let l = app.seed_learner("dev@example.com").await;
        let token = app.start_session(&l).await;
        let res = app.get(&format!("/dev/session/{token}")).await;
        assert_page_error(res, 404, "page_not_found").await;

        let app = TestApp::builder()
            .backend(backend)
            .env("COURSEGATE_DEV_SIGNIN", "true")
            .spawn()
            .await;
        let l = app.seed_learner("dev@example.com").await;
        let token = app.start_session(&l).await;
        let res = app.get(&format!("/dev/session/{token}")).await;
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), "/");
        // The anonymous client kept the cookie: it is now signed in.
        assert!(text(&app.client, app.url("/")).await.contains("Hello, Lee Learner"));
        let res = app.get("/dev/session/cgs_not-a-token").await;
        assert_page_error(res, 401, "not_signed_in").await;
    }
}
