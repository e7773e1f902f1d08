//! Headless Chromium over WebDriver: open the emailed link, press Continue,
//! land in the course. Skips loudly when chromium/chromedriver are missing,
//! fails under CI=true (`.ci/run` installs them).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::harness::App;

pub(crate) fn skip_named(name: &str, why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("browser test cannot run under CI=true: {why}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {name}: {why} ***\n");
}

fn skip(why: &str) {
    skip_named("browser::emailed_link_continue_lands_in_the_course", why)
}

pub(crate) fn find_exe(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

pub(crate) struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn start_driver(exe: &Path) -> Result<(Driver, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new(exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let d = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{url}/status")).send().await {
            if r.status().is_success() {
                return Ok((d, url));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("chromedriver did not become ready".into())
}

pub(crate) async fn connect(url: &str, chromium: &Path, profile: &Path) -> Result<Client, String> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(url)
        .await
        .map_err(|e| format!("cannot open a Chromium session: {e}"))
}

#[actix_web::test]
async fn emailed_link_continue_lands_in_the_course() {
    let (Some(chromium), Some(chromedriver)) = (
        find_exe(&["chromium", "chromium-browser", "google-chrome"]),
        find_exe(&["chromedriver"]),
    ) else {
        return skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
    };
    let (_driver, url) = match start_driver(&chromedriver).await {
        Ok(d) => d,
        Err(e) => return skip(&e),
    };
    let profile = tempfile::tempdir().unwrap();
    let c = match connect(&url, &chromium, profile.path()).await {
        Ok(c) => c,
        Err(e) => return skip(&e),
    };
    let app = App::spawn(None).await;
    let l = app.learner("web@example.com", &[("safety", None)]);
    app.issue(&l, Some("safety"), Some("access"));
    let link = app
        .deliver_one("web@example.com")
        .await
        .find_link(&app.base)
        .unwrap();

    c.goto(&link).await.unwrap();
    let title = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(title, "Continue to Course safety");
    // Opening the page alone signed nobody in.
    assert_eq!(app.link_row(&link).redeem_count, 0);
    c.find(Locator::Id("continue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mut landed = String::new();
    for _ in 0..100 {
        landed = c.current_url().await.unwrap().to_string();
        if landed.ends_with("/courses/safety") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(landed, app.url("/courses/safety"));
    let h1 = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(h1.contains("Course safety"), "{h1}");
    assert_eq!(app.link_row(&link).redeem_count, 1);
    c.close().await.unwrap();
}
