//! A real browser: headless Chromium over WebDriver with third-party cookies
//! blocked. An LMS page on another site (`http://localhost:<platform>`)
//! frames the tool (`http://127.0.0.1:<tool>`) and auto-posts the login
//! initiation into the frame; the tool redirects to the platform's auth
//! endpoint, which form-posts the id_token back; the learner must reach the
//! course, in the frame or through the "Open in a new window" handoff, and
//! the flight record must name the path taken.
//!
//! Needs `chromium` and `chromedriver` (Debian: `chromium`, `chromium-driver`).
//! Screenshots go to `$COURSEGATE_SCREENSHOTS` when set.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common::{skip, Opts, Tool};

const TEST: &str = "browser::a_framed_launch_reaches_the_course_with_third_party_cookies_blocked";

fn find_exe(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver, killed (by its own pid) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver(exe: &PathBuf) -> Result<Driver, String> {
    let port = free_port();
    let child = Command::new(exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{}/status", d.url)).send().await {
            if r.status().is_success() {
                return Ok(d);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("chromedriver did not become ready in 10 s".into())
}

async fn connect(
    driver: &Driver,
    chromium: &std::path::Path,
    profile: &std::path::Path,
) -> Result<Client, String> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.display()),
                // Block third-party cookies (as Safari and Chrome's phase-out do).
                "--test-third-party-cookie-phaseout",
            ],
            "prefs": {
                "profile.block_third_party_cookies": true,
                // 1 = block third-party cookies (Settings › Privacy › Third-party cookies).
                "profile.cookie_controls_mode": 1,
            },
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .map_err(|e| format!("cannot open a Chromium session: {e}"))
}

struct Shots(Option<PathBuf>);

impl Shots {
    async fn take(&self, c: &Client, name: &str) {
        if let Some(dir) = &self.0 {
            std::fs::create_dir_all(dir).unwrap();
            let png = c.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("lti-{name}.png")), png).unwrap();
        }
    }
}

/// Polls the current frame's page source until `pred` holds (60 s at most:
/// a loaded CI machine runs several browsers at once).
async fn wait_source(c: &Client, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..600 {
        if let Ok(s) = c.source().await {
            if pred(&s) {
                return s;
            }
            last = s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; last page: {last}");
}

/// Polls the source of the page's first frame until `pred` holds. The frame
/// is entered again on every poll: while the frame navigates across sites
/// (tool → platform → tool), a browser may drop the driver's frame context
/// and answer with the top-level page instead.
async fn wait_frame_source(c: &Client, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..600 {
        let _ = c.enter_parent_frame().await;
        if c.enter_frame(0).await.is_ok() {
            if let Ok(s) = c.source().await {
                if pred(&s) {
                    return s;
                }
                last = s;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; last page: {last}");
}

#[actix_web::test]
async fn a_framed_launch_reaches_the_course_with_third_party_cookies_blocked() {
    framed_launch(TEST, false).await;
}

/// The same frame, on an LMS that offers platform storage
/// (`lti_storage_target`): the state check travels by postMessage instead of
/// the cookie the browser drops, and the flight record says `storage`.
#[actix_web::test]
async fn a_framed_launch_keeps_its_state_in_the_platforms_storage() {
    framed_launch(
        "browser::a_framed_launch_keeps_its_state_in_the_platforms_storage",
        true,
    )
    .await;
}

async fn framed_launch(test: &str, storage: bool) {
    let (Some(chromium), Some(chromedriver)) = (
        find_exe(&["chromium", "chromium-browser", "google-chrome"]),
        find_exe(&["chromedriver"]),
    ) else {
        skip(test, "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let driver = match start_driver(&chromedriver).await {
        Ok(d) => d,
        Err(e) => return skip(test, &e),
    };
    let profile = tempfile::tempdir().unwrap();
    let c = match connect(&driver, &chromium, profile.path()).await {
        Ok(c) => c,
        Err(e) => return skip(test, &e),
    };
    let shots = Shots(std::env::var_os("COURSEGATE_SCREENSHOTS").map(PathBuf::from));
    // Without storage: the new-window handoff; with it: the frame session.
    let tool = Tool::start(Opts {
        frame_sessions: storage,
        ..Opts::default()
    })
    .await;
    // The LMS is another site than the tool: localhost vs 127.0.0.1.
    let page = if storage { "lms-storage" } else { "lms" };
    let lms = format!("http://localhost:{}/{page}", tool.platform.port);
    assert!(!lms.contains(&tool.base));

    c.goto(&lms).await.unwrap();
    let main_window = c.window().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("iframe#tool"))
        .await
        .unwrap();
    // Inside the frame: login → platform auth → launch → continue.
    let frame = wait_frame_source(&c, "the course or the new-window page in the frame", |s| {
        s.contains("Open in a new window") || s.contains("<h1>Intro") || s.contains(">Intro<")
    })
    .await;
    c.enter_parent_frame().await.unwrap();
    shots.take(&c, &format!("{page}-1-frame")).await;

    let launch = tool
        .flights()
        .into_iter()
        .find(|r| r.step == "launch")
        .expect("a launch flight record");
    assert_eq!(launch.outcome, "ok", "{:?}", launch.reason);
    let path = launch.state_path.clone().unwrap_or_default();

    if frame.contains("Open in a new window") {
        // The frame could keep no cookie: the record says so, and the
        // one-time ticket moves the sign-in into a first-party window.
        let expected = if storage { "storage" } else { "ticket" };
        assert_eq!(
            path, expected,
            "a handoff page but the flight record says {path}"
        );
        c.enter_frame(0).await.unwrap();
        c.find(Locator::LinkText("Open in a new window"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.enter_parent_frame().await.unwrap();
        let mut new_window = None;
        for _ in 0..100 {
            let ws = c.windows().await.unwrap();
            if let Some(w) = ws.into_iter().find(|w| *w != main_window) {
                new_window = Some(w);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.switch_to_window(new_window.expect("the new window opened"))
            .await
            .unwrap();
        wait_source(&c, "the handoff page", |s| {
            s.contains("Continue to your course")
        })
        .await;
        shots
            .take(&c, &format!("{page}-2-new-window-handoff"))
            .await;
        c.find(Locator::Css("form[action^='/lti/handoff/'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_source(&c, "the course in the new window", |s| {
            s.contains("Intro") && s.contains("One")
        })
        .await;
        let url = c.current_url().await.unwrap();
        assert_eq!(url.path(), "/courses/intro", "{url}");
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        shots.take(&c, &format!("{page}-3-course-new-window")).await;
    } else {
        // The frame kept its cookie (only possible where the browser lets
        // the tool's cookie through) or by the frame session in the path.
        c.enter_frame(0).await.unwrap();
        let at = c.execute("return location.pathname", vec![]).await.unwrap();
        let at = at.as_str().unwrap_or_default().to_string();
        if at.starts_with("/f/") {
            assert!(at.ends_with("/courses/intro"), "{at}");
            let expected = if storage { "storage" } else { "ticket" };
            assert_eq!(
                path, expected,
                "a frame session but the flight record says {path}"
            );
            // Navigation stays inside the frame session: open the first lesson.
            c.find(Locator::LinkText("One"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            wait_source(&c, "the lesson in the frame", |s| {
                s.contains("Mark") || s.contains("complete")
            })
            .await;
            let at = c.execute("return location.pathname", vec![]).await.unwrap();
            let at = at.as_str().unwrap_or_default();
            assert!(
                at.starts_with("/f/") && at.contains("/courses/intro/lessons/"),
                "{at}"
            );
        } else {
            assert!(
                path == "cookie" || path == "partitioned",
                "the course opened in the frame at {at} but the flight record says {path}"
            );
        }
        c.enter_parent_frame().await.unwrap();
        shots.take(&c, &format!("{page}-2-course-in-frame")).await;
    }
    let mut err = std::io::stderr();
    let _ = std::io::Write::write_all(
        &mut err,
        format!("browser launch path: {path}\n").as_bytes(),
    );
    c.close().await.unwrap();
    drop(driver);
}

/// An instructor launches, in the LMS frame with third-party cookies
/// blocked, a link that is connected to no course: the picker opens in the
/// frame session, "Use this course" connects the link, and the instructor
/// view of the link follows, still in the frame.
#[actix_web::test]
async fn an_instructor_picks_the_course_of_an_unmapped_link_in_the_frame() {
    let test = "browser::an_instructor_picks_the_course_of_an_unmapped_link_in_the_frame";
    let (Some(chromium), Some(chromedriver)) = (
        find_exe(&["chromium", "chromium-browser", "google-chrome"]),
        find_exe(&["chromedriver"]),
    ) else {
        skip(test, "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let driver = match start_driver(&chromedriver).await {
        Ok(d) => d,
        Err(e) => return skip(test, &e),
    };
    let profile = tempfile::tempdir().unwrap();
    let c = match connect(&driver, &chromium, profile.path()).await {
        Ok(c) => c,
        Err(e) => return skip(test, &e),
    };
    let shots = Shots(std::env::var_os("COURSEGATE_SCREENSHOTS").map(PathBuf::from));
    let tool = Tool::start(Opts::default()).await;
    c.goto(&format!(
        "http://localhost:{}/lms-instructor",
        tool.platform.port
    ))
    .await
    .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("iframe#tool"))
        .await
        .unwrap();
    c.enter_frame(0).await.unwrap();
    wait_source(&c, "the course picker in the frame", |s| {
        s.contains("Choose the course for this activity")
    })
    .await;
    let at = c.execute("return location.pathname", vec![]).await.unwrap();
    let at = at.as_str().unwrap_or_default().to_string();
    c.enter_parent_frame().await.unwrap();
    shots.take(&c, "picker-1-in-frame").await;
    c.enter_frame(0).await.unwrap();
    c.find(Locator::Css("li[data-course='intro'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_source(&c, "the instructor view in the frame", |s| {
        s.contains("Instructor view")
    })
    .await;
    let view = c.execute("return location.pathname", vec![]).await.unwrap();
    let view = view.as_str().unwrap_or_default().to_string();
    c.enter_parent_frame().await.unwrap();
    shots.take(&c, "picker-2-instructor-view").await;
    assert!(view.contains("/lti/instructor/"), "{view}");
    // Both pages stayed in the same kind of session: the frame session in
    // the path when the browser kept no cookie, else the cookie.
    assert_eq!(
        at.starts_with("/f/"),
        view.starts_with("/f/"),
        "{at} → {view}"
    );
    let mapped = tool
        .store
        .read_blocking(|tx| {
            let p = coursegate_store::repo::lti::find_platform(
                tx,
                coursegate_lti::testing::ISSUER,
                coursegate_lti::testing::CLIENT_ID,
            )?
            .unwrap();
            coursegate_store::repo::lti::find_resource_link(
                tx,
                &p.id,
                coursegate_lti::testing::DEPLOYMENT_ID,
                "rl-browser-unmapped",
            )
        })
        .unwrap()
        .and_then(|l| l.course_id);
    assert!(mapped.is_some(), "the link is connected to a course");
    let mut err = std::io::stderr();
    let _ = std::io::Write::write_all(&mut err, format!("picker path: {at}\n").as_bytes());
    c.close().await.unwrap();
    drop(driver);
}
