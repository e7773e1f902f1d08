//! Headless Chromium over WebDriver: a staff member signs in from the
//! emailed link, creates a course and a lesson (with a preview), invites a
//! learner from a sheet uploaded as a CSV file with one bad row (the batch
//! page follows the email through the outbox, the email arrives, the
//! learner redeems it) and opens the dashboard, which counts them. Every main page
//! is saved as a screenshot into `$COURSEGATE_SCREENSHOTS` when set. Skips
//! loudly when chromium or chromedriver are missing, fails under CI=true.

use std::{path::PathBuf, time::Duration};

use fantoccini::{Client, Locator};

use crate::magic_links::{
    browser::{connect, find_exe, skip_named, start_driver},
    harness::App,
};

const TEST: &str = "staff_console::browser::staff_signs_in_creates_a_course_and_sees_the_dashboard";

struct Shots(Option<PathBuf>);

impl Shots {
    async fn take(&self, c: &Client, name: &str) {
        if let Some(dir) = &self.0 {
            std::fs::create_dir_all(dir).unwrap();
            let png = c.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("staff-{name}.png")), png).unwrap();
        }
    }
}

/// Waits (WebDriver's own polling, bounded) until the browser is at `path`.
async fn at(c: &Client, app: &App, path: &str) {
    let url = url::Url::parse(&app.url(path)).unwrap();
    if let Err(e) = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_url(&url)
        .await
    {
        let now = c
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let page = c.source().await.unwrap_or_default();
        panic!("never reached {path} ({e}); at {now}: {page}");
    }
}

async fn fill(c: &Client, id: &str, text: &str) {
    let e = c.find(Locator::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[actix_web::test]
async fn staff_signs_in_creates_a_course_and_sees_the_dashboard() {
    let (Some(chromium), Some(chromedriver)) = (
        find_exe(&["chromium", "chromium-browser", "google-chrome"]),
        find_exe(&["chromedriver"]),
    ) else {
        return skip_named(TEST, "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
    };
    let (_driver, url) = match start_driver(&chromedriver).await {
        Ok(d) => d,
        Err(e) => return skip_named(TEST, &e),
    };
    let profile = tempfile::tempdir().unwrap();
    let c = match connect(&url, &chromium, profile.path()).await {
        Ok(c) => c,
        Err(e) => return skip_named(TEST, &e),
    };
    c.set_window_size(1280, 1400).await.unwrap();
    let shots = Shots(std::env::var_os("COURSEGATE_SCREENSHOTS").map(PathBuf::from));
    let app = App::spawn(None).await;
    let l = app.learner("pat@example.com", &[("safety", None)]);
    app.staff_link("owner@example.com");
    let link = app
        .deliver_one("owner@example.com")
        .await
        .find_link(&app.base)
        .unwrap();

    // Sign in: the emailed link, then Continue.
    c.goto(&link).await.unwrap();
    click(&c, "#continue").await;
    at(&c, &app, "/staff").await;
    assert_eq!(text(&c, "h1").await, "Learners");
    shots.take(&c, "learners").await;

    // Create a course from the Courses page.
    click(&c, "nav.staff-nav a[href='/staff/courses']").await;
    at(&c, &app, "/staff/courses").await;
    shots.take(&c, "courses").await;
    click(&c, "a[href='/staff/courses/new']").await;
    at(&c, &app, "/staff/courses/new").await;
    fill(&c, "c-slug", "fire-safety").await;
    fill(&c, "c-title", "Fire safety").await;
    fill(&c, "c-summary", "Alarms, exits and extinguishers.").await;
    click(&c, "input[name=published]").await;
    fill(&c, "c-days", "90").await;
    shots.take(&c, "course-new").await;
    click(&c, "#save-course").await;
    at(&c, &app, "/staff/courses/fire-safety").await;
    assert_eq!(text(&c, "h1").await, "Fire safety");

    // A lesson, previewed before saving.
    click(&c, "a[href='/staff/courses/fire-safety/lessons/new']").await;
    at(&c, &app, "/staff/courses/fire-safety/lessons/new").await;
    fill(&c, "l-title", "Alarms").await;
    fill(&c, "l-body", "# Alarms\n\nPress the **red** button.").await;
    click(&c, "button[value=preview]").await;
    let strong = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("section.preview strong"))
        .await
        .unwrap();
    assert_eq!(strong.text().await.unwrap(), "red");
    shots.take(&c, "lesson-preview").await;
    click(&c, "button[value=save]").await;
    at(&c, &app, "/staff/courses/fire-safety#lessons").await;
    assert_eq!(text(&c, ".lesson-list li a").await, "Alarms");
    shots.take(&c, "course-edit").await;

    // Invite from a sheet with one bad row: preview, then send.
    click(&c, "nav.staff-nav a[href='/staff/invitations']").await;
    at(&c, &app, "/staff/invitations").await;
    // The sheet is uploaded as a file through the file input (WebDriver
    // types the file's path into it).
    let sheet_dir = tempfile::tempdir().unwrap();
    let sheet = sheet_dir.path().join("invitations.csv");
    std::fs::write(
        &sheet,
        "email,name,course,reference\r\nkim@example.com,Kim,fire-safety,order 7\r\nnobody,No One,fire-safety,\r\n",
    )
    .unwrap();
    c.find(Locator::Id("inv-file"))
        .await
        .unwrap()
        .send_keys(sheet.to_str().unwrap())
        .await
        .unwrap();
    click(&c, "#preview").await;
    let summary = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("summary"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        summary.starts_with("1 to send · 1 with errors · 0 duplicate(s)"),
        "{summary}"
    );
    shots.take(&c, "invitations-preview").await;
    click(&c, "#send").await;
    let sent = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("sent"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sent, "1 invitation(s) queued; 1 row(s) skipped.");
    assert_eq!(
        text(&c, "#progress").await,
        "1 queued · 0 failed, retrying · 0 sent · 0 dead"
    );
    let batch = c.current_url().await.unwrap();
    assert!(batch.path().starts_with("/staff/invitations/batches/"));
    shots.take(&c, "invitations-sent").await;
    // The email arrives at the SMTP sink; the learner redeems it.
    let link = app
        .deliver_one("kim@example.com")
        .await
        .find_link(&app.base)
        .unwrap();
    let learner = crate::magic_links::harness::client();
    let r = crate::magic_links::harness::redeem(&learner, &link).await;
    assert_eq!(r.headers()["location"], "/courses/fire-safety");
    // The batch page now shows the email as sent.
    c.goto(batch.as_str()).await.unwrap();
    assert_eq!(
        text(&c, "#progress").await,
        "0 queued · 0 failed, retrying · 1 sent · 0 dead"
    );
    shots.take(&c, "invitations-delivered").await;
    // The outbox view of that email: the HTML part renders inside the
    // sandboxed frame under the server's Content-Security-Policy.
    click(&c, "tr.state-sent a").await;
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("mail-html"))
        .await
        .unwrap();
    assert!(text(&c, "#mail-text").await.contains("Fire safety"));
    c.find(Locator::Id("mail-html"))
        .await
        .unwrap()
        .enter_frame()
        .await
        .unwrap();
    let framed = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(framed.contains("Fire safety"), "{framed}");
    c.enter_parent_frame().await.unwrap();
    shots.take(&c, "outbox-message").await;

    // The learner page, then the dashboard with a chart per course.
    c.goto(&app.url(&format!("/staff/learners/{l}")))
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("enrolments"))
        .await
        .unwrap();
    shots.take(&c, "learner").await;
    click(&c, "nav.staff-nav a[href='/staff/dashboard']").await;
    at(&c, &app, "/staff/dashboard").await;
    let titles = c.find_all(Locator::Css("section.funnel h3")).await.unwrap();
    let mut names = Vec::new();
    for t in titles {
        names.push(t.text().await.unwrap());
    }
    assert_eq!(names, ["Course gdpr", "Course safety", "Fire safety"]);
    let charts = c
        .find_all(Locator::Css("section.funnel svg.chart"))
        .await
        .unwrap();
    assert_eq!(charts.len(), 3);
    assert_eq!(
        text(
            &c,
            "section.funnel:nth-of-type(2) .funnel-totals div:first-child dd"
        )
        .await,
        "1",
        "one learner invited to Course safety"
    );
    // The invited learner is counted as invited and opened on Fire safety.
    assert_eq!(
        text(
            &c,
            "section.funnel:nth-of-type(3) .funnel-totals div:first-child dd"
        )
        .await,
        "1",
        "one learner invited to Fire safety"
    );
    assert_eq!(
        text(
            &c,
            "section.funnel:nth-of-type(3) .funnel-totals div:nth-child(2) dd"
        )
        .await,
        "1",
        "who opened the link"
    );
    shots.take(&c, "dashboard").await;
    for (path, name) in [
        ("/staff/audit", "audit"),
        ("/staff/settings", "settings"),
        ("/staff/lms", "lms"),
    ] {
        c.goto(&app.url(path)).await.unwrap();
        at(&c, &app, path).await;
        shots.take(&c, name).await;
    }
    c.close().await.unwrap();
}
