//! Every rejection reason of the login and of the id_token validation, over
//! HTTP with its exact `X-Error-Code` and a 4xx status; the 1EdTech
//! certification's valid teacher and student variants; replays.

use chrono::Duration;
use coursegate_lti::testing::{self, TokenMinter};
use serde_json::json;

use crate::common::{assert_refused, claim, code, Opts, Tool, INSTRUCTOR, LEARNER};

type Tweak = Box<dyn Fn(TokenMinter) -> TokenMinter>;

fn t(f: impl Fn(TokenMinter) -> TokenMinter + 'static) -> Tweak {
    Box::new(f)
}

#[actix_web::test]
async fn every_id_token_rejection_reason_is_a_distinct_4xx() {
    let tool = Tool::start(Opts::default()).await;
    let other_launch = "http://127.0.0.1:1/lti/launch";
    let cases: Vec<(&str, &str, Tweak)> = vec![
        // Token shape, algorithm and key.
        ("alg none", "alg_not_allowed", t(|m| m.header_alg("none"))),
        (
            "alg HS256 (key confusion)",
            "alg_not_allowed",
            t(|m| m.header_alg("HS256")),
        ),
        ("alg RS512", "alg_not_allowed", t(|m| m.header_alg("RS512"))),
        ("no kid", "kid_missing", t(|m| m.kid(None))),
        (
            "unknown kid",
            "kid_unknown",
            t(|m| m.kid(Some("no-such-kid"))),
        ),
        (
            "signed with another key",
            "bad_signature",
            t(|m| m.sign_with_other_key()),
        ),
        // Who issued it, for whom.
        (
            "other issuer",
            "iss_mismatch",
            t(|m| m.claim("iss", "https://evil.example")),
        ),
        (
            "issuer with trailing slash",
            "iss_mismatch",
            t(|m| m.claim("iss", format!("{}/", testing::ISSUER))),
        ),
        (
            "aud without our client_id",
            "aud_mismatch",
            t(|m| m.claim("aud", "someone-else")),
        ),
        (
            "aud list without our client_id",
            "aud_mismatch",
            t(|m| m.claim("aud", json!(["a", "b"])).claim("azp", "a")),
        ),
        (
            "several audiences, one untrusted, azp ours",
            "aud_untrusted",
            t(|m| {
                m.claim("aud", json!([testing::CLIENT_ID, "other-client"]))
                    .claim("azp", testing::CLIENT_ID)
            }),
        ),
        // With several audiences the untrusted extra audience is refused before
        // azp is looked at (the server trusts no extra audience), so a missing
        // or foreign azp next to an untrusted audience reads aud_untrusted.
        (
            "several audiences, no azp",
            "aud_untrusted",
            t(|m| {
                m.claim("aud", json!([testing::CLIENT_ID, "other-client"]))
                    .without("azp")
            }),
        ),
        (
            "several audiences, azp another client",
            "aud_untrusted",
            t(|m| {
                m.claim("aud", json!([testing::CLIENT_ID, "other-client"]))
                    .claim("azp", "other-client")
            }),
        ),
        (
            "azp another client",
            "azp_mismatch",
            t(|m| m.claim("azp", "other-client")),
        ),
        (
            "aud list of one with foreign azp",
            "azp_mismatch",
            t(|m| {
                m.claim("aud", json!([testing::CLIENT_ID]))
                    .claim("azp", "x")
            }),
        ),
        // Time.
        ("no exp", "exp_missing", t(|m| m.without("exp"))),
        ("no iat", "iat_missing", t(|m| m.without("iat"))),
        // Nonce.
        ("no nonce", "nonce_missing", t(|m| m.without("nonce"))),
        ("empty nonce", "nonce_missing", t(|m| m.claim("nonce", ""))),
        (
            "another login's nonce",
            "nonce_mismatch",
            t(|m| m.claim("nonce", "lno_someone_elses")),
        ),
        // LTI claims.
        (
            "no version",
            "version_missing",
            t(|m| m.without(&claim("version"))),
        ),
        (
            "version 1.1",
            "version_invalid",
            t(|m| m.claim(&claim("version"), "1.1")),
        ),
        (
            "no message_type",
            "message_type_missing",
            t(|m| m.without(&claim("message_type"))),
        ),
        (
            "unknown message_type",
            "message_type_invalid",
            t(|m| m.claim(&claim("message_type"), "LtiFooRequest")),
        ),
        (
            "no deployment_id",
            "deployment_id_missing",
            t(|m| m.without(&claim("deployment_id"))),
        ),
        ("no sub", "sub_missing", t(|m| m.without("sub"))),
        ("empty sub", "sub_missing", t(|m| m.claim("sub", ""))),
        (
            "no roles",
            "roles_missing",
            t(|m| m.without(&claim("roles"))),
        ),
        (
            "no resource_link",
            "resource_link_missing",
            t(|m| m.without(&claim("resource_link"))),
        ),
        (
            "resource_link without id",
            "resource_link_missing",
            t(|m| m.without_field(&claim("resource_link"), "id")),
        ),
        (
            "no target_link_uri",
            "target_link_uri_missing",
            t(|m| m.without(&claim("target_link_uri"))),
        ),
        (
            "target_link_uri of another tool",
            "target_link_uri_mismatch",
            t(move |m| m.claim(&claim("target_link_uri"), other_launch)),
        ),
        // After verification, in the core.
        (
            "unregistered deployment",
            "deployment_unknown",
            t(|m| m.claim(&claim("deployment_id"), "other-deployment")),
        ),
        (
            "custom course that does not exist",
            "course_unknown",
            t(|m| m.claim(&claim("custom"), json!({"course": "missing"}))),
        ),
        (
            "learner on an unmapped link",
            "course_not_set_up",
            t(|m| {
                m.without(&claim("custom")).claim_field(
                    &claim("resource_link"),
                    "id",
                    "unmapped-link",
                )
            }),
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (what, expected, f) in &cases {
        let (state, nonce) = tool.login().await;
        let token = f(tool.minter(&nonce)).mint();
        let res = tool.launch(&token, &state).await;
        assert_refused(res, expected, what).await;
        seen.insert(*expected);
    }

    // Time, with the clock moved instead of the claims.
    let now = tool.clock.now().timestamp();
    let timed: Vec<(&str, &str, Tweak)> = vec![
        (
            "expired",
            "token_expired",
            t(move |m| m.claim("iat", now - 600).claim("exp", now - 120)),
        ),
        (
            "iat beyond the skew",
            "iat_in_future",
            t(move |m| m.claim("iat", now + 120).claim("exp", now + 600)),
        ),
        (
            "iat older than the maximum age",
            "token_too_old",
            t(move |m| m.claim("iat", now - 3600 - 120).claim("exp", now + 600)),
        ),
        (
            "nbf in the future",
            "token_not_yet_valid",
            t(move |m| m.claim("nbf", now + 300)),
        ),
        (
            "exp not a number",
            "claim_invalid",
            t(|m| m.claim("exp", "tomorrow")),
        ),
        (
            "custom not an object",
            "claim_invalid",
            t(|m| m.claim(&claim("custom"), "course=intro")),
        ),
    ];
    for (what, expected, f) in &timed {
        let (state, nonce) = tool.login().await;
        let token = f(tool.minter(&nonce)).mint();
        assert_refused(tool.launch(&token, &state).await, expected, what).await;
        seen.insert(*expected);
    }
    // A token that was valid when minted but expired by the time it arrives.
    let (state, nonce) = tool.login().await;
    let token = tool.minter(&nonce).mint();
    tool.manual.advance(Duration::seconds(300 + 61));
    assert_refused(
        tool.launch(&token, &state).await,
        "token_expired",
        "arrives too late",
    )
    .await;

    // Malformed tokens.
    for (what, junk) in [
        ("garbage", "not a jwt"),
        ("two parts", "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0"),
        ("three parts, not base64", "a.b.c"),
        ("four parts", "a.b.c.d"),
        ("header not JSON", "bm90LWpzb24.eyJpc3MiOiJ4In0.c2ln"),
    ] {
        let (state, _) = tool.login().await;
        assert_refused(tool.launch(junk, &state).await, "malformed_token", what).await;
    }
    let (state, _) = tool.login().await;
    let res = tool
        .client
        .post(format!("{}/lti/launch", tool.base))
        .form(&[("state", state.as_str())])
        .send()
        .await
        .unwrap();
    assert_refused(res, "id_token_missing", "no id_token").await;
    let res = tool
        .client
        .post(format!("{}/lti/launch", tool.base))
        .form(&[
            ("error", "login_required"),
            ("error_description", "no session"),
        ])
        .send()
        .await
        .unwrap();
    assert_refused(res, "platform_error", "the platform answered an error").await;

    // State problems.
    let token = tool.minter("x").mint();
    assert_refused(tool.launch(&token, "").await, "state_missing", "no state").await;
    assert_refused(
        tool.launch(&token, "lst_unknown").await,
        "state_unknown",
        "unknown state",
    )
    .await;
    let (state, nonce) = tool.login().await;
    tool.manual.advance(Duration::minutes(11));
    let token = tool.minter(&nonce).mint();
    assert_refused(
        tool.launch(&token, &state).await,
        "state_expired",
        "login older than ten minutes",
    )
    .await;

    // Every refusal left a flight record with its reason.
    let flights = tool.flights();
    for code in &seen {
        assert!(
            flights.iter().any(|r| r.step == "launch"
                && r.outcome == "rejected"
                && r.reason.as_deref() == Some(*code)),
            "no flight record for {code}"
        );
    }
    // The flight recorder is redacted: no token, nonce or personal data in the checks.
    assert!(flights
        .iter()
        .all(|r| !r.checks.contains("ada@example.edu") && !r.checks.contains("lno_")));
}

#[actix_web::test]
async fn every_login_rejection_reason_is_a_distinct_4xx() {
    let tool = Tool::start(Opts::default()).await;
    let launch = tool.launch_url();
    let full = [
        ("iss", testing::ISSUER.to_string()),
        ("login_hint", "user-0001".to_string()),
        ("target_link_uri", launch.clone()),
        ("client_id", testing::CLIENT_ID.to_string()),
        ("lti_deployment_id", testing::DEPLOYMENT_ID.to_string()),
    ];
    type Params = Vec<(&'static str, String)>;
    let without = |k: &str| -> Params { full.iter().filter(|(n, _)| *n != k).cloned().collect() };
    let with = |k: &'static str, v: &str| -> Params {
        full.iter()
            .map(|(n, old)| (*n, if *n == k { v.to_string() } else { old.clone() }))
            .collect()
    };
    let cases: Vec<(&str, &str, Params)> = vec![
        ("no iss", "login_param_missing", without("iss")),
        ("empty iss", "login_param_missing", with("iss", " ")),
        (
            "no login_hint",
            "login_param_missing",
            without("login_hint"),
        ),
        (
            "no target_link_uri",
            "login_param_missing",
            without("target_link_uri"),
        ),
        (
            "target_link_uri not a URL",
            "login_param_invalid",
            with("target_link_uri", "not a url"),
        ),
        (
            "unknown issuer",
            "platform_unknown",
            with("iss", "https://unknown.example"),
        ),
        (
            "unknown client_id",
            "platform_unknown",
            with("client_id", "who"),
        ),
        (
            "target_link_uri outside the tool",
            "target_link_uri_invalid",
            with("target_link_uri", "https://elsewhere.example/lti/launch"),
        ),
    ];
    for (what, expected, params) in &cases {
        // GET (query) and POST (form) behave the same.
        let res = tool
            .client
            .get(format!("{}/lti/login", tool.base))
            .query(params)
            .send()
            .await
            .unwrap();
        assert_refused(res, expected, &format!("GET {what}")).await;
        let res = tool
            .client
            .post(format!("{}/lti/login", tool.base))
            .form(params)
            .send()
            .await
            .unwrap();
        assert_refused(res, expected, &format!("POST {what}")).await;
    }
    // Without client_id an issuer with one registration is found; Canvas's
    // `deployment_id` spelling is accepted.
    let mut canvas = without("client_id");
    canvas.retain(|(k, _)| *k != "lti_deployment_id");
    canvas.push(("deployment_id", testing::DEPLOYMENT_ID.into()));
    let res = tool
        .client
        .post(format!("{}/lti/login", tool.base))
        .form(&canvas)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let flights = tool.flights();
    for (_, expected, _) in &cases {
        assert!(flights
            .iter()
            .any(|r| r.step == "login" && r.reason.as_deref() == Some(*expected)));
    }
}

#[actix_web::test]
async fn certification_valid_teacher_and_student_launches_are_accepted() {
    let tool = Tool::start(Opts::default()).await;
    let pii = ["name", "given_name", "family_name", "email"];
    for (who, role, short) in [
        ("instructor", INSTRUCTOR, "Instructor"),
        ("learner", LEARNER, "Learner"),
    ] {
        let variants: Vec<(&str, Tweak)> = vec![
            ("full launch", t(move |m| m.roles(&[role]))),
            (
                "multiple roles",
                t(move |m| {
                    m.roles(&[
                        role,
                        "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student",
                        "http://purl.imsglobal.org/vocab/lis/v2/system/person#User",
                    ])
                }),
            ),
            ("short role name", t(move |m| m.roles(&[short]))),
            (
                "unknown role URI",
                t(|m| m.roles(&["http://example.com/roles#Wizard"])),
            ),
            ("empty roles array", t(|m| m.roles(&[]))),
            (
                "email only",
                t(move |m| {
                    m.roles(&[role])
                        .without("name")
                        .without("given_name")
                        .without("family_name")
                }),
            ),
            ("names only", t(move |m| m.roles(&[role]).without("email"))),
            (
                "no PII",
                t(move |m| pii.iter().fold(m.roles(&[role]), |m, k| m.without(k))),
            ),
            (
                "email without context",
                t(move |m| {
                    m.roles(&[role])
                        .without("name")
                        .without("given_name")
                        .without("family_name")
                        .without(&claim("context"))
                }),
            ),
            (
                "only a resource link",
                t(move |m| {
                    [
                        claim("context"),
                        claim("tool_platform"),
                        claim("launch_presentation"),
                    ]
                    .iter()
                    .fold(m.roles(&[role]), |m, k| m.without(k))
                }),
            ),
        ];
        for (i, (what, f)) in variants.iter().enumerate() {
            let client = crate::common::cookie_client();
            let (state, nonce) = tool.login_at(&client, &tool.base).await;
            let token = f(tool.minter(&nonce))
                .claim("sub", format!("{who}-{i}"))
                .mint();
            let res = tool.launch_at(&client, &tool.base, &token, &state).await;
            assert_eq!(
                res.status(),
                303,
                "{who}, {what}: {} {}",
                code(&res),
                res.text().await.unwrap_or_default()
            );
            let to = tool.follow_to_course(&client, &tool.base, res).await;
            // An instructor of a resource link gets the instructor view of its course.
            let instructor =
                who == "instructor" && !matches!(*what, "unknown role URI" | "empty roles array");
            if instructor {
                assert!(to.starts_with("/lti/instructor/"), "{who}, {what}: {to}");
            } else {
                assert_eq!(to, "/courses/intro", "{who}, {what}");
            }
        }
    }
    let ok = tool
        .flights()
        .iter()
        .filter(|r| r.step == "launch" && r.outcome == "ok")
        .count();
    assert_eq!(ok, 20);
}

#[actix_web::test]
async fn a_used_state_and_a_used_nonce_are_refused() {
    let tool = Tool::start(Opts::default()).await;
    let (state, nonce) = tool.login().await;
    let token = tool.minter(&nonce).mint();
    let res = tool.launch(&token, &state).await;
    tool.follow_to_course(&tool.client, &tool.base, res).await;

    // The same form posted again (back button, a proxy, an attacker).
    assert_refused(
        tool.launch(&token, &state).await,
        "state_replayed",
        "state replay",
    )
    .await;

    // The consumed nonce inside a token for a fresh login: not the nonce issued.
    let (state2, _nonce2) = tool.login().await;
    let replayed = tool.minter(&nonce).mint();
    assert_refused(
        tool.launch(&replayed, &state2).await,
        "nonce_mismatch",
        "a consumed nonce with a new state",
    )
    .await;

    // The same launch posted twice at once (a double click, a proxy retry):
    // the state, and with it the nonce, is used up by exactly one of them.
    let (state3, nonce3) = tool.login().await;
    let token3 = tool.minter(&nonce3).mint();
    let (a, b) = tokio::join!(tool.launch(&token3, &state3), tool.launch(&token3, &state3));
    let (won, lost) = if a.status() == 303 { (a, b) } else { (b, a) };
    assert_eq!(won.status(), 303, "one of two racing launches is accepted");
    assert_refused(lost, "state_replayed", "the racing second launch").await;
    // And afterwards nothing accepts that nonce again.
    let (state4, _nonce4) = tool.login().await;
    assert_refused(
        tool.launch(&tool.minter(&nonce3).mint(), &state4).await,
        "nonce_mismatch",
        "a raced nonce with a new state",
    )
    .await;

    let flights = tool.flights();
    for reason in ["state_replayed", "nonce_mismatch"] {
        assert!(
            flights.iter().any(|r| r.reason.as_deref() == Some(reason)),
            "{reason} not recorded"
        );
    }
}

/// The value of `data-NAME="…"` in a page (attribute values are escaped).
fn data_attr(page: &str, name: &str) -> String {
    let start = page
        .find(&format!("data-{name}=\""))
        .unwrap_or_else(|| panic!("no data-{name} in {page}"))
        + name.len()
        + 7;
    let end = start + page[start..].find('"').unwrap();
    page[start..end]
        .replace("&amp;", "&")
        .replace("&#x2F;", "/")
}

/// Platform storage without the cookie: the login leaves the state's check
/// value for the platform's storage, the cookie-less launch asks the browser
/// to read it back, and only the right value completes the launch.
#[actix_web::test]
async fn platform_storage_stands_in_for_a_blocked_cookie() {
    let tool = Tool::start(Opts::default()).await;
    // A client that keeps no cookies: a frame whose browser blocks them.
    let frame = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |target: &'static str| {
        let (frame, base, launch) = (frame.clone(), tool.base.clone(), tool.launch_url());
        async move {
            let res = frame
                .post(format!("{base}/lti/login"))
                .form(&[
                    ("iss", testing::ISSUER),
                    ("login_hint", "user-0001"),
                    ("target_link_uri", launch.as_str()),
                    ("client_id", testing::CLIENT_ID),
                    ("lti_deployment_id", testing::DEPLOYMENT_ID),
                    ("lti_storage_target", target),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let page = res.text().await.unwrap();
            assert_eq!(data_attr(&page, "mode"), "put");
            assert_eq!(data_attr(&page, "target"), target);
            let next = url::Url::parse(&data_attr(&page, "next")).unwrap();
            let q: std::collections::HashMap<String, String> =
                next.query_pairs().into_owned().collect();
            (
                q["state"].clone(),
                q["nonce"].clone(),
                data_attr(&page, "key"),
                data_attr(&page, "value"),
                data_attr(&page, "origin"),
            )
        }
    };
    let (state, nonce, key, value, origin) = login("_parent").await;
    // Messages go to the platform's OIDC origin only.
    let auth = url::Url::parse(&tool.platform.auth_url).unwrap();
    assert_eq!(origin, auth.origin().ascii_serialization());
    assert!(
        key.starts_with("cg_lti_") && value.len() == 32,
        "{key} {value}"
    );

    let token = tool.minter(&nonce).mint();
    let post = |fields: Vec<(&'static str, String)>| {
        let (frame, base) = (frame.clone(), tool.base.clone());
        async move {
            frame
                .post(format!("{base}/lti/launch"))
                .form(&fields)
                .send()
                .await
                .unwrap()
        }
    };
    // No cookie came back: the tool asks the browser to read its storage.
    let res = post(vec![("id_token", token.clone()), ("state", state.clone())]).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert_eq!(data_attr(&page, "mode"), "get");
    assert_eq!(data_attr(&page, "key"), key);
    assert!(page.contains("name=\"lti_storage\" value=\"1\""), "{page}");

    // Another browser's value is refused, and names why.
    let wrong = post(vec![
        ("id_token", token.clone()),
        ("state", state.clone()),
        ("lti_storage", "1".into()),
        ("lti_storage_value", "0".repeat(32)),
    ])
    .await;
    assert_refused(wrong, "storage_state_mismatch", "a foreign storage value").await;

    // The right value completes the launch by the storage path.
    let ok = post(vec![
        ("id_token", token),
        ("state", state),
        ("lti_storage", "1".into()),
        ("lti_storage_value", value),
    ])
    .await;
    assert_eq!(ok.status(), 303);
    let launches: Vec<_> = tool
        .flights()
        .into_iter()
        .filter(|r| r.step == "launch")
        .collect();
    assert!(
        launches
            .iter()
            .any(|r| r.outcome == "ok" && r.state_path.as_deref() == Some("storage")),
        "{launches:?}"
    );

    // Canvas's forwarding frame lives on each Canvas instance's own domain.
    let (.., origin) = login("post_message_forwarding").await;
    assert_eq!(origin, "*");
}

/// A frame that keeps no cookie continues with the session in the path:
/// links, forms and redirects stay under `/f/{token}/`, pages carry
/// `Referrer-Policy: no-referrer`, and a made-up token signs nobody in.
#[actix_web::test]
async fn a_cookieless_frame_continues_with_a_frame_session() {
    let tool = Tool::start(Opts::default()).await;
    let (state, nonce) = tool.login().await;
    let token = tool.minter(&nonce).mint();
    let frame = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = tool.launch_at(&frame, &tool.base, &token, &state).await;
    assert_eq!(res.status(), 303);
    let cont = res.headers()["location"].to_str().unwrap().to_string();
    let res = frame
        .get(format!("{}{cont}", tool.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let course = res.headers()["location"].to_str().unwrap().to_string();
    let prefix = course
        .strip_suffix("/courses/intro")
        .expect("a frame path to the course");
    assert!(prefix.starts_with("/f/") && prefix.len() > 20, "{course}");
    // The ticket became the session: it cannot be used again.
    let again = frame
        .get(format!("{}{cont}", tool.base))
        .send()
        .await
        .unwrap();
    assert_refused(again, "ticket_used", "a second continue").await;

    let res = frame
        .get(format!("{}{course}", tool.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = res.text().await.unwrap();
    assert!(
        page.contains(&format!("href=\"{prefix}/courses/intro/lessons/")),
        "{page}"
    );
    assert!(
        page.contains("href=\"/static/app.css\""),
        "static files keep their path"
    );
    assert!(
        !page.contains("href=\"/courses/"),
        "every in-app link is prefixed: {page}"
    );

    // A form in the frame works (CSRF from the same session) and redirects inside it.
    let lesson_path = {
        let at = page
            .find(&format!("{prefix}/courses/intro/lessons/"))
            .unwrap();
        let end = at + page[at..].find('"').unwrap();
        page[at..end].to_string()
    };
    let lesson = frame
        .get(format!("{}{lesson_path}", tool.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let action = lesson
        .split("action=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .find(|a| a.ends_with("/complete"))
        .unwrap_or_else(|| panic!("a mark-complete form in {lesson}"))
        .to_string();
    assert!(action.starts_with(prefix), "{action}");
    let csrf = {
        let at = lesson.find("name=\"csrf\" value=\"").unwrap() + 19;
        let end = at + lesson[at..].find('"').unwrap();
        lesson[at..end].to_string()
    };
    let done = frame
        .post(format!("{}{action}", tool.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status(),
        303,
        "{}",
        done.text().await.unwrap_or_default()
    );
    assert!(done.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with(prefix));

    let forged = frame
        .get(format!("{}/f/cgs_made_up_token/courses/intro", tool.base))
        .send()
        .await
        .unwrap();
    assert_refused(forged, "not_signed_in", "a made-up frame token").await;
}
