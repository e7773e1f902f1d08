//! The staff console over real HTTP: roles on every route (reads included),
//! CSRF on every new form, markup in course titles and learner names shown
//! as text, the audit CSV escaped against formula injection, and the
//! editing pages (courses, lessons, enrolments, sessions, settings). Every
//! rejection asserts its exact code and reason. Runs on SQLite and, with
//! TEST_DATABASE_URL, on PostgreSQL.

mod browser;
mod scoping;
mod sso;

use coursegate_core::{audit::Actor, links, staff::Role, types::Email, Clock, CoreError};

use crate::magic_links::harness::{backends, client, code, csrf_of, redeem, App};

/// A staff member with `role`, signed in through an emailed one-time link.
pub(crate) async fn staff_as(app: &App, email: &str, role: Role) -> reqwest::Client {
    staff_with_agent(app, email, role, None).await
}

pub(crate) async fn staff_with_agent(
    app: &App,
    email: &str,
    role: Role,
    agent: Option<&str>,
) -> reqwest::Client {
    let now = app.clock.now();
    let secret = app.state.config.secret.clone();
    let settings = app.state.config.links;
    let base = app.base.clone();
    let e = Email::parse(email).unwrap();
    app.store
        .write_blocking(move |tx| {
            let (s, _) = coursegate_core::staff::ensure(tx, now, &e, None, role)?;
            links::issue_staff(
                tx,
                now,
                &secret,
                &settings,
                &Actor::cli(),
                &s.id,
                Some(&base),
            )?;
            Ok::<_, CoreError>(())
        })
        .unwrap();
    let link = app.deliver_one(email).await.find_link(&app.base).unwrap();
    let c = match agent {
        None => client(),
        Some(a) => reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .user_agent(a)
            .build()
            .unwrap(),
    };
    let r = redeem(&c, &link).await;
    if r.status() != 303 {
        panic!(
            "staff sign-in for {email}: {} {}",
            r.status(),
            r.text().await.unwrap()
        );
    }
    assert_eq!(r.headers()["location"], "/staff");
    c
}

pub(crate) async fn get(c: &reqwest::Client, app: &App, path: &str) -> (u16, String, String) {
    let r = c.get(app.url(path)).send().await.unwrap();
    let (s, k) = (r.status().as_u16(), code(&r));
    (s, k, r.text().await.unwrap())
}

/// GETs `page` for its CSRF token, then POSTs `fields` (plus the token) to `action`.
pub(crate) async fn post(
    c: &reqwest::Client,
    app: &App,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let body = c
        .get(app.url(page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&body);
    let mut f: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    f.extend_from_slice(fields);
    c.post(app.url(action)).form(&f).send().await.unwrap()
}

fn reason(body: &str) -> String {
    let k = "<p class=\"lead\">";
    let i = body
        .find(k)
        .unwrap_or_else(|| panic!("an error page: {body}"))
        + k.len();
    body[i..i + body[i..].find("</p>").unwrap()].to_string()
}

#[actix_web::test]
async fn every_staff_page_checks_the_role_and_support_cannot_change_settings() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        // Signed out: every console page refuses, GETs included.
        for p in [
            "/staff",
            "/staff/dashboard",
            "/staff/courses",
            "/staff/courses/safety",
            "/staff/audit",
            "/staff/audit.csv",
            "/staff/settings",
            "/staff/lms",
        ] {
            let (s, k, _) = get(&client(), &app, p).await;
            assert_eq!((s, k.as_str()), (401, "not_signed_in"), "{p}");
        }
        let support = staff_as(&app, "sue@example.com", Role::Support).await;
        for p in [
            "/staff",
            "/staff/dashboard",
            "/staff/courses",
            "/staff/courses/safety",
            "/staff/audit",
            "/staff/lms",
        ] {
            assert_eq!(get(&support, &app, p).await.0, 200, "support reads {p}");
        }
        let (s, k, body) = get(&support, &app, "/staff/settings").await;
        assert_eq!((s, k.as_str()), (403, "forbidden"));
        assert_eq!(
            reason(&body),
            "Your role (support) cannot change site settings."
        );
        // A POST with a valid token from the dashboard: still the role decides.
        let r = post(
            &support,
            &app,
            "/staff/dashboard",
            "/staff/settings",
            &[("name", "Hijacked")],
        )
        .await;
        assert_eq!((r.status().as_u16(), code(&r)), (403, "forbidden".into()));
        assert_eq!(
            reason(&r.text().await.unwrap()),
            "Your role (support) cannot change site settings."
        );
        let r = post(
            &support,
            &app,
            "/staff/courses",
            "/staff/courses",
            &[("slug", "x"), ("title", "X"), ("link_policy", "access")],
        )
        .await;
        assert_eq!((r.status().as_u16(), code(&r)), (403, "forbidden".into()));
        assert_eq!(
            reason(&r.text().await.unwrap()),
            "Your role (support) cannot create courses."
        );
        // The navigation only offers what the role may open.
        let (_, _, dash) = get(&support, &app, "/staff/dashboard").await;
        assert!(dash.contains("href=\"/staff/audit\""));
        assert!(!dash.contains("href=\"/staff/settings\""));

        // Instructors edit courses but read no audit log and change no learner.
        let inst = staff_as(&app, "ian@example.com", Role::Instructor).await;
        let (s, k, body) = get(&inst, &app, "/staff/audit").await;
        assert_eq!((s, k.as_str()), (403, "forbidden"));
        assert_eq!(
            reason(&body),
            "Your role (instructor) cannot read the audit log."
        );
        let (s, _, body) = get(&inst, &app, "/staff/audit.csv").await;
        assert_eq!(s, 403);
        assert_eq!(
            reason(&body),
            "Your role (instructor) cannot read the audit log."
        );
        let l = app.learner("lee@example.com", &[("safety", None)]);
        let r = post(
            &inst,
            &app,
            "/staff/dashboard",
            &format!("/staff/learners/{l}/sessions/revoke"),
            &[],
        )
        .await;
        assert_eq!(r.status(), 403);
        assert_eq!(
            reason(&r.text().await.unwrap()),
            "Your role (instructor) cannot sign learners out."
        );
        let r = post(
            &inst,
            &app,
            "/staff/courses/new",
            "/staff/courses",
            &[
                ("slug", "first-aid"),
                ("title", "First aid"),
                ("link_policy", "once"),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/staff/courses/first-aid");

        // The owner changes the settings; pages use them at once.
        let owner = staff_as(&app, "olga@example.com", Role::Owner).await;
        let r = post(
            &owner,
            &app,
            "/staff/settings",
            "/staff/settings",
            &[
                ("name", "Acme Academy"),
                ("support_email", "help@acme.test"),
                ("support_phone", "+44 20 7946 0000"),
                ("logo_url", "https://acme.test/logo.png"),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);
        let (_, _, body) = get(&owner, &app, "/staff/settings").await;
        assert!(body.contains("value=\"Acme Academy\""));
        let (_, _, signin) = get(&client(), &app, "/signin").await;
        assert!(signin.contains("Acme Academy"));
        assert!(signin.contains("help@acme.test"));
        // …and emails too.
        app.issue(&l, Some("safety"), None);
        let mail = app.deliver_one("lee@example.com").await;
        let text = mail.text_body().unwrap();
        assert!(text.contains("Acme Academy"), "{text}");
        assert!(text.contains("help@acme.test"), "{text}");
        // Refused input comes back on the form with the reason.
        let r = post(
            &owner,
            &app,
            "/staff/settings",
            "/staff/settings",
            &[("name", "Acme"), ("logo_url", "javascript:alert(1)")],
        )
        .await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "invalid_input".into())
        );
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("logo_url: must be an http(s) address"));
        assert_eq!(app.audit_count("settings.updated"), 1);
    }
}

#[actix_web::test]
async fn new_forms_refuse_a_missing_or_forged_csrf_token() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let owner = staff_as(&app, "olga@example.com", Role::Owner).await;
        let expected = "The form was sent without a valid security token, or from another site. Go back, reload the page and try again.";
        for (action, fields) in [
            (
                "/staff/settings",
                vec![("csrf", "forged"), ("name", "Evil")],
            ),
            (
                "/staff/courses",
                vec![
                    ("slug", "evil"),
                    ("title", "Evil"),
                    ("link_policy", "access"),
                ],
            ),
            (
                "/staff/courses/safety",
                vec![("csrf", ""), ("title", "Evil"), ("link_policy", "access")],
            ),
            (
                "/staff/courses/safety/lessons",
                vec![("csrf", "x"), ("title", "Evil"), ("body", "x")],
            ),
            (
                "/staff/enrolments/bulk",
                vec![("csrf", "x"), ("op", "revoke"), ("enrolment", "e")],
            ),
        ] {
            let r = owner
                .post(app.url(action))
                .form(&fields)
                .send()
                .await
                .unwrap();
            assert_eq!(
                (r.status().as_u16(), code(&r)),
                (403, "csrf_failed".into()),
                "{action}"
            );
            assert_eq!(reason(&r.text().await.unwrap()), expected, "{action}");
        }
        // Another staff member's token does not work either.
        let other = staff_as(&app, "sam@example.com", Role::Admin).await;
        let (_, _, page) = get(&other, &app, "/staff/settings").await;
        let r = owner
            .post(app.url("/staff/settings"))
            .form(&[("csrf", csrf_of(&page).as_str()), ("name", "Evil")])
            .send()
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), code(&r)), (403, "csrf_failed".into()));
        assert_eq!(app.audit_count("settings.updated"), 0);
        assert_eq!(app.audit_count("course.created"), 0);
        let (_, _, s) = get(&owner, &app, "/staff/settings").await;
        assert!(s.contains("value=\"Coursegate\""));
    }
}

#[actix_web::test]
async fn markup_in_course_titles_and_learner_names_is_shown_as_text() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let owner = staff_as(&app, "olga@example.com", Role::Owner).await;
        let title = "<script>alert('t')</script>";
        let r = post(
            &owner,
            &app,
            "/staff/courses/new",
            "/staff/courses",
            &[
                ("slug", "xss"),
                ("title", title),
                ("summary", "<b onmouseover=x()>s</b>"),
                ("published", "1"),
                ("link_policy", "access"),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);
        let escaped = "&lt;script&gt;alert(&#x27;t&#x27;)&lt;&#x2F;script&gt;";
        for p in ["/staff/courses", "/staff/courses/xss", "/staff/dashboard"] {
            let (s, _, body) = get(&owner, &app, p).await;
            assert_eq!(s, 200);
            assert!(body.contains(escaped), "{p}: {body}");
            assert!(!body.contains("<script>alert"), "{p}");
        }
        let (_, _, edit) = get(&owner, &app, "/staff/courses/xss").await;
        assert!(edit.contains("&lt;b onmouseover=x()&gt;s&lt;&#x2F;b&gt;"));
        // A learner named with markup, through the enrol form.
        let name = "<img src=x onerror=alert(1)>";
        let r = post(
            &owner,
            &app,
            "/staff",
            "/staff/learners",
            &[
                ("email", "mal@example.com"),
                ("name", name),
                ("course", "xss"),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);
        let lp = r.headers()["location"].to_str().unwrap().to_string();
        let escaped = "&lt;img src=x onerror=alert(1)&gt;";
        for p in ["/staff?q=mal", lp.as_str()] {
            let (s, _, body) = get(&owner, &app, p).await;
            assert_eq!(s, 200);
            assert!(body.contains(escaped), "{p}: {body}");
            assert!(!body.contains("<img src=x"), "{p}");
        }
        // The lesson preview is rendered by the core and sanitised.
        let r = post(
            &owner,
            &app,
            "/staff/courses/xss/lessons/new",
            "/staff/courses/xss/lessons",
            &[
                ("title", "Intro"),
                (
                    "body",
                    "# Hello\n\n**bold** <script>alert(2)</script><a href=\"javascript:x()\">l</a>",
                ),
                ("action", "preview"),
            ],
        )
        .await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        let i = body.find("Preview (not saved yet)").unwrap();
        let preview = &body[i..];
        assert!(preview.contains("<h1>Hello</h1>"));
        assert!(preview.contains("<strong>bold</strong>"));
        assert!(!preview.contains("<script"));
        assert!(!preview.contains("javascript:"));
        // The textarea keeps the source, escaped.
        assert!(body.contains("&lt;script&gt;alert(2)&lt;&#x2F;script&gt;"));
        assert_eq!(
            app.audit_count("lesson.created"),
            0,
            "a preview saves nothing"
        );
    }
}

#[actix_web::test]
async fn the_audit_csv_is_escaped_and_formulas_are_defused() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let agent = "=HYPERLINK(\"https://evil.example/\",\"x\")";
        let owner = staff_with_agent(&app, "olga@example.com", Role::Owner, Some(agent)).await;
        let r = post(
            &owner,
            &app,
            "/staff/settings",
            "/staff/settings",
            &[("name", "Acme, \"the\" Academy")],
        )
        .await;
        assert_eq!(r.status(), 303);
        let r = owner
            .get(app.url("/staff/audit.csv?action=settings.updated"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
        assert_eq!(
            r.headers()["content-disposition"],
            "attachment; filename=\"audit.csv\""
        );
        let csv = r.text().await.unwrap();
        let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines[0],
            "at,actor_kind,actor_id,action,subject_kind,subject_id,ip,user_agent,detail"
        );
        assert_eq!(lines.len(), 2, "{csv}");
        let row = lines[1];
        assert!(row.starts_with("2026-11-22T09:00:00Z,staff,"), "{row}");
        assert!(
            row.contains(",settings.updated,settings,site,127.0.0.1,"),
            "{row}"
        );
        // The formula is prefixed with ' and the quoted cell doubles its quotes.
        assert!(
            row.contains(",\"'=HYPERLINK(\"\"https://evil.example/\"\",\"\"x\"\")\","),
            "{row}"
        );
        assert!(
            row.ends_with(",\"{\"\"name\"\":\"\"Acme, \\\"\"the\\\"\" Academy\"\"}\""),
            "{row}"
        );
        // Filters: a date range with nothing in it leaves the header only.
        let (s, _, csv) = get(&owner, &app, "/staff/audit.csv?from=2026-11-23").await;
        assert_eq!(s, 200);
        assert_eq!(csv.split("\r\n").filter(|l| !l.is_empty()).count(), 1);
        let (_, _, page) = get(
            &owner,
            &app,
            "/staff/audit?actor=staff&action=settings.updated&from=2026-11-22&to=2026-11-22",
        )
        .await;
        assert!(page.contains("<code>settings.updated</code>"));
        assert!(!page.contains("<code>enrolment.granted</code>"));
        let (_, _, empty) = get(&owner, &app, "/staff/audit?action=nothing.here").await;
        assert!(empty.contains("No entries match. Clear the filters, or widen the dates."));
        let (s, k, body) = get(&owner, &app, "/staff/audit?from=yesterday").await;
        assert_eq!((s, k.as_str()), (400, "invalid_input"));
        assert_eq!(reason(&body), "from: must be a date like 2027-01-31");
    }
}

#[actix_web::test]
async fn courses_lessons_enrolments_and_sessions_are_edited_from_the_console() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let owner = staff_as(&app, "olga@example.com", Role::Owner).await;
        // Create, refuse a duplicate, edit.
        let fields = [
            ("slug", "fire"),
            ("title", "Fire safety"),
            ("link_policy", "access"),
            ("default_access_days", "30"),
        ];
        let r = post(
            &owner,
            &app,
            "/staff/courses/new",
            "/staff/courses",
            &fields,
        )
        .await;
        assert_eq!(r.status(), 303);
        let r = post(
            &owner,
            &app,
            "/staff/courses/new",
            "/staff/courses",
            &fields,
        )
        .await;
        assert_eq!((r.status().as_u16(), code(&r)), (409, "conflict".into()));
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("a course with slug &quot;fire&quot; already exists"));
        let r = post(
            &owner,
            &app,
            "/staff/courses/fire",
            "/staff/courses/fire",
            &[
                ("title", "Fire safety 2"),
                ("summary", "Drills"),
                ("published", "1"),
                ("graded", "1"),
                ("link_policy", "once"),
                ("default_access_days", "9999"),
            ],
        )
        .await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "invalid_input".into())
        );
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("default_access_days: must be between 1 and 3650"));
        let r = post(
            &owner,
            &app,
            "/staff/courses/fire",
            "/staff/courses/fire",
            &[
                ("title", "Fire safety 2"),
                ("summary", "Drills"),
                ("published", "1"),
                ("graded", "1"),
                ("link_policy", "once"),
                ("default_access_days", ""),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);
        let c = app
            .store
            .read_blocking(|tx| coursegate_core::courses::by_slug(tx, "fire"))
            .unwrap();
        assert_eq!(
            (
                c.title.as_str(),
                c.published,
                c.graded,
                c.link_policy.as_str(),
                c.default_access_days
            ),
            ("Fire safety 2", true, true, "once", None)
        );
        // Lessons: add two, reorder, edit, delete.
        for t in ["Alarms", "Exits"] {
            let r = post(
                &owner,
                &app,
                "/staff/courses/fire/lessons/new",
                "/staff/courses/fire/lessons",
                &[("title", t), ("body", "Some *text*."), ("action", "save")],
            )
            .await;
            assert_eq!(r.status(), 303);
        }
        let lessons = |app: &App| {
            let id = c.id.clone();
            app.store
                .read_blocking(move |tx| coursegate_store::repo::courses::lessons_of(tx, &id))
                .unwrap()
        };
        let ls = lessons(&app);
        assert_eq!(
            ls.iter().map(|l| l.title.as_str()).collect::<Vec<_>>(),
            ["Alarms", "Exits"]
        );
        let r = post(
            &owner,
            &app,
            "/staff/courses/fire",
            &format!("/staff/courses/fire/lessons/{}/move", ls[1].id),
            &[("direction", "up")],
        )
        .await;
        assert_eq!(r.status(), 303);
        let ls = lessons(&app);
        assert_eq!(
            ls.iter().map(|l| l.title.as_str()).collect::<Vec<_>>(),
            ["Exits", "Alarms"]
        );
        let r = post(
            &owner,
            &app,
            "/staff/courses/fire",
            &format!("/staff/courses/fire/lessons/{}", ls[0].id),
            &[
                ("title", "Exits and routes"),
                ("body", "# Exits"),
                ("action", "save"),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);
        let r = post(
            &owner,
            &app,
            "/staff/courses/fire",
            &format!("/staff/courses/fire/lessons/{}/delete", ls[1].id),
            &[],
        )
        .await;
        assert_eq!(r.status(), 303);
        let ls = lessons(&app);
        assert_eq!(
            ls.iter()
                .map(|l| (l.title.as_str(), l.body.as_str()))
                .collect::<Vec<_>>(),
            [("Exits and routes", "# Exits")]
        );
        // The list: sorting and paging links.
        let (_, _, list) = get(&owner, &app, "/staff/courses?sort=title_desc").await;
        let (a, b) = (
            list.find("Fire safety 2").unwrap(),
            list.find("Course gdpr").unwrap(),
        );
        assert!(a < b, "title Z–A");
        assert!(list.contains("<option value=\"title_desc\" selected>"));

        // Enrolments: extend, revoke one, bulk-extend; sessions revoked.
        let l = app.learner("lee@example.com", &[("safety", None), ("gdpr", None)]);
        app.issue(&l, Some("safety"), Some("access"));
        let link = app
            .deliver_one("lee@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        let learner = client();
        assert_eq!(redeem(&learner, &link).await.status(), 303);
        assert_eq!(
            learner
                .get(app.url("/courses/safety"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let lp = format!("/staff/learners/{l}");
        let (_, _, page) = get(&owner, &app, &lp).await;
        assert!(page.contains("<td>email</td>"), "an email identity");
        assert!(page.contains("<td>active</td>"), "an active session");
        let ids = |app: &App| {
            let l = l.clone();
            app.store
                .read_blocking(move |tx| coursegate_store::repo::enrolments::of_learner(tx, &l))
                .unwrap()
        };
        let ens = ids(&app);
        let (gdpr, safety) = (&ens[0].0, &ens[1].0);
        assert_eq!(ens[0].1.slug, "gdpr");
        let r = post(
            &owner,
            &app,
            &lp,
            &format!("/staff/enrolments/{}/extend", safety.id),
            &[("until", "2027-01-31")],
        )
        .await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], format!("{lp}#enrolments").as_str());
        let r = post(
            &owner,
            &app,
            &lp,
            &format!("/staff/enrolments/{}/extend", safety.id),
            &[("until", "31/01/2027")],
        )
        .await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "invalid_input".into())
        );
        assert_eq!(
            reason(&r.text().await.unwrap()),
            "until: must be a date like 2027-01-31"
        );
        let r = post(
            &owner,
            &app,
            &lp,
            &format!("/staff/enrolments/{}/revoke", gdpr.id),
            &[],
        )
        .await;
        assert_eq!(r.status(), 303);
        let r = post(
            &owner,
            &app,
            &lp,
            "/staff/enrolments/bulk",
            &[
                ("op", "extend"),
                ("until", "2027-03-01"),
                ("enrolment", &safety.id),
                ("enrolment", &gdpr.id),
                ("back", &l),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);
        let r = post(
            &owner,
            &app,
            &lp,
            "/staff/enrolments/bulk",
            &[("op", "extend"), ("back", &l)],
        )
        .await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "invalid_input".into())
        );
        assert_eq!(
            reason(&r.text().await.unwrap()),
            "Tick at least one enrolment, then choose what to do."
        );
        let ens = ids(&app);
        let end = chrono::NaiveDate::from_ymd_opt(2027, 3, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(ens[1].0.expires_at, Some(end));
        assert!(ens[0].0.revoked_at.is_some());
        assert_eq!(app.audit_count("enrolment.extended"), 3);
        assert_eq!(app.audit_count("enrolment.revoked"), 1);
        let r = post(
            &owner,
            &app,
            &lp,
            &format!("/staff/learners/{l}/sessions/revoke"),
            &[],
        )
        .await;
        assert_eq!(r.status(), 303);
        let r = learner
            .get(app.url("/courses/safety"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (401, "not_signed_in".into())
        );
        let (_, _, page) = get(&owner, &app, &lp).await;
        assert!(page.contains("<td>signed out</td>"));
        assert!(page.contains("<code>sessions.revoked_all</code>"));
        assert!(page.contains("<code>enrolment.revoked</code>"));
    }
}

#[actix_web::test]
async fn the_outbox_lists_dead_messages_and_retries_them() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let owner = staff_as(&app, "olga@example.com", Role::Owner).await;
        let support = staff_as(&app, "sue@example.com", Role::Support).await;
        let (_, _, empty) = get(&owner, &app, "/staff/outbox?status=dead").await;
        assert!(empty.contains(
            "No dead messages: everything that failed was delivered on a later attempt."
        ));
        let l = app.learner("dee@example.com", &[("safety", None)]);
        app.issue(&l, Some("safety"), Some("access"));
        let now = app.clock.now().naive_utc();
        let id = app
            .store
            .write_blocking(move |tx| {
                let m = coursegate_store::repo::outbox::list(
                    tx,
                    Some("pending"),
                    Some("email"),
                    Default::default(),
                )?
                .pop()
                .expect("a queued mail");
                coursegate_store::repo::outbox::mark_failed(
                    tx,
                    &m.id,
                    now,
                    "550 <b>mailbox full</b>",
                    None,
                )?;
                Ok::<_, CoreError>(m.id)
            })
            .unwrap();
        let (s, _, page) = get(&support, &app, "/staff/outbox?status=dead").await;
        assert_eq!(s, 200);
        assert!(page.contains("550 &lt;b&gt;mailbox full&lt;&#x2F;b&gt;"));
        assert!(!page.contains("/retry"), "support sees no retry button");
        let (s, k, body) = get(&owner, &app, "/staff/outbox?status=lost").await;
        assert_eq!((s, k.as_str()), (400, "invalid_input"));
        assert_eq!(reason(&body), "status must be pending, failed or dead.");
        let r = post(
            &support,
            &app,
            "/staff/outbox?status=dead",
            &format!("/staff/outbox/{id}/retry"),
            &[],
        )
        .await;
        assert_eq!((r.status().as_u16(), code(&r)), (403, "forbidden".into()));
        assert_eq!(
            reason(&r.text().await.unwrap()),
            "Your role (support) cannot retry messages."
        );
        let r = post(
            &owner,
            &app,
            "/staff/outbox?status=dead",
            &format!("/staff/outbox/{id}/retry"),
            &[],
        )
        .await;
        assert_eq!(r.status(), 303);
        let r = post(
            &owner,
            &app,
            "/staff/outbox?status=dead",
            &format!("/staff/outbox/{id}/retry"),
            &[],
        )
        .await;
        assert_eq!((r.status().as_u16(), code(&r)), (409, "conflict".into()));
        assert_eq!(
            reason(&r.text().await.unwrap()),
            "only dead messages can be retried; this one is pending"
        );
        let (_, _, pending) = get(&owner, &app, "/staff/outbox?status=pending").await;
        assert!(pending.contains(&id) || pending.contains("<td>email</td>"));
        let mail = app.deliver_one("dee@example.com").await;
        assert!(mail.find_link(&app.base).is_some());
        assert_eq!(app.audit_count("outbox.retried"), 1);
    }
}

#[actix_web::test]
async fn a_csv_sheet_is_previewed_with_errors_and_duplicates_then_sent_through_the_outbox() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let owner = staff_as(&app, "olga@example.com", Role::Owner).await;
        let sheet = "email,name,course,start,end,reference\r\n\
            ann@example.com,\"Smith, Ann\",safety,,2027-01-31,order 1\r\n\
            not-an-email,Bob,safety,,,\r\n\
            cy@example.com,<b>Cy</b>,nope,,,\r\n\
            ANN@example.com,Ann again,safety,,,\r\n\
            dan@example.com,Dan,gdpr,2027-02-01,2027-01-01,=cmd()\r\n";
        let r = post(
            &owner,
            &app,
            "/staff/invitations",
            "/staff/invitations/preview",
            &[("csv", sheet)],
        )
        .await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains("<strong>1</strong> to send · <strong>3</strong> with errors · <strong>1</strong> duplicate(s)"), "{page}");
        assert!(page.contains("Duplicate of line 2"));
        assert!(
            !page.contains("Preview as learner"),
            "no learner-preview banner"
        );
        assert!(
            page.contains("<td>&lt;b&gt;Cy&lt;&#x2F;b&gt;</td>"),
            "markup in a cell is text"
        );
        assert!(page.contains("course: there is no course &quot;nope&quot;"));
        assert!(page.contains("end: must be after start"));
        assert_eq!(
            app.sink.messages_to("ann@example.com").len(),
            0,
            "a preview sends nothing"
        );
        assert_eq!(app.pass().await.sent, 0);
        // A sheet without the required columns is refused as a whole.
        let r = post(
            &owner,
            &app,
            "/staff/invitations",
            "/staff/invitations/preview",
            &[("csv", "name\nAnn\n")],
        )
        .await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "invalid_input".into())
        );
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("csv: the first line must name a email column"));
        // Confirm: the sheet is checked again and the good row is sent.
        let r = post(
            &owner,
            &app,
            "/staff/invitations",
            "/staff/invitations/send",
            &[("csv", sheet)],
        )
        .await;
        assert_eq!(r.status(), 303);
        let batch = r.headers()["location"].to_str().unwrap().to_string();
        let (_, _, done) = get(&owner, &app, &batch).await;
        assert!(
            done.contains("1 invitation(s) queued; 4 row(s) skipped."),
            "{done}"
        );
        let mail = app.deliver_one("ann@example.com").await;
        let link = mail.find_link(&app.base).unwrap();
        let learner = client();
        let r = redeem(&learner, &link).await;
        assert_eq!(r.headers()["location"], "/courses/safety");
        let e = app
            .store
            .read_blocking(|tx| {
                let l = coursegate_store::repo::learners::find_by_email(tx, "ann@example.com")?
                    .unwrap();
                Ok::<_, CoreError>(coursegate_store::repo::enrolments::of_learner(tx, &l.id)?)
            })
            .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].0.source.as_str(), e[0].0.source_ref.as_deref()),
            ("csv", Some("order 1"))
        );
        assert_eq!(app.audit_count("invitations.sent"), 1);
        // Instructors invite to their own courses only (staff_console::scoping).
        let inst = staff_as(&app, "ian@example.com", Role::Instructor).await;
        let (s, _, body) = get(&inst, &app, "/staff/invitations").await;
        assert_eq!(s, 200);
        assert!(body.contains("You may invite learners to your own courses only"));
    }
}
