//! Dynamic Registration end to end against the test platform: the LMS opens
//! the tool's registration URL, the tool reads and checks the platform's
//! configuration, registers, stores the platform, and a later launch from
//! that platform works.

use std::collections::HashMap;

use coursegate_lti::testing::TokenMinter;
use coursegate_store::repo;

use crate::common::{assert_refused, claim, cookie_client, Opts, Tool, LEARNER};
use crate::services::{DYN_CLIENT_ID, DYN_DEPLOYMENT_ID, REGISTRATION_TOKEN};

fn tool_opts() -> Opts {
    Opts {
        register_test_platform: false,
        ..Default::default()
    }
}

fn platform_base(tool: &Tool) -> String {
    format!("http://127.0.0.1:{}", tool.platform.port)
}

#[tokio::test]
async fn dynamic_registration_stores_the_platform_and_a_later_launch_works() {
    let tool = Tool::start(tool_opts()).await;
    let base = platform_base(&tool);
    let config_url = format!("{base}/.well-known/openid-configuration");
    let client = cookie_client();
    let res = client
        .get(format!("{}/lti/register", tool.base))
        .query(&[
            ("openid_configuration", config_url.as_str()),
            ("registration_token", REGISTRATION_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    let csp = res
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string());
    let status = res.status();
    let page = res.text().await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<script src=\"/static/lti-close.js\">"),
        "{page}"
    );
    assert!(page.contains(DYN_CLIENT_ID));
    if let Some(csp) = csp {
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    let js = client
        .get(format!("{}/static/lti-close.js", tool.base))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("org.imsglobal.lti.close"));
    {
        let sv = tool.platform.services.lock().unwrap();
        assert_eq!(sv.registrations.len(), 1, "{:?}", sv.refusals);
        let r = &sv.registrations[0];
        assert_eq!(r["initiate_login_uri"], format!("{}/lti/login", tool.base));
        assert_eq!(
            r["jwks_uri"],
            format!("{}/.well-known/jwks.json", tool.base)
        );
    }
    // Stored: the platform with its endpoints, and the deployment.
    let (p, deps) = tool
        .store
        .read_blocking(move |tx| {
            let p = repo::lti::find_platform(tx, &platform_base_of(&config_url), DYN_CLIENT_ID)?
                .expect("the registered platform");
            let d = repo::lti::deployments_of(tx, &p.id)?;
            Ok::<_, coursegate_store::StoreError>((p, d))
        })
        .unwrap();
    assert_eq!(p.token_url, format!("{base}/token"));
    assert_eq!(p.jwks_url, format!("{base}/jwks"));
    assert_eq!(p.lms.as_deref(), Some("test"));
    assert_eq!(deps.len(), 1);
    assert_eq!(deps[0].deployment_id, DYN_DEPLOYMENT_ID);

    // A launch from the newly registered platform.
    let learner = cookie_client();
    let res = learner
        .get(format!("{}/lti/login", tool.base))
        .query(&[
            ("iss", base.as_str()),
            ("login_hint", "dyn-user"),
            ("target_link_uri", &tool.launch_url()),
            ("client_id", DYN_CLIENT_ID),
            ("lti_deployment_id", DYN_DEPLOYMENT_ID),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        302,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let loc = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(&format!("{base}/auth")), "{loc}");
    let q: HashMap<String, String> = loc.query_pairs().into_owned().collect();
    let token =
        TokenMinter::for_platform(&base, DYN_CLIENT_ID, DYN_DEPLOYMENT_ID, tool.clock.now())
            .nonce(&q["nonce"])
            .claim("sub", "dyn-user")
            .claim(&claim("target_link_uri"), tool.launch_url())
            .roles(&[LEARNER])
            .mint();
    let res = tool
        .launch_at(&learner, &tool.base, &token, &q["state"])
        .await;
    let to = tool.follow_to_course(&learner, &tool.base, res).await;
    assert_eq!(to, "/courses/intro");
}

fn platform_base_of(config_url: &str) -> String {
    let u = url::Url::parse(config_url).unwrap();
    format!("{}://{}", u.scheme(), u.host_str().unwrap())
        + &u.port().map(|p| format!(":{p}")).unwrap_or_default()
}

#[tokio::test]
async fn an_issuer_on_another_site_is_refused_with_the_reason() {
    let tool = Tool::start(tool_opts()).await;
    let base = platform_base(&tool);
    let config_url =
        format!("{base}/.well-known/openid-configuration?issuer=https://lms.elsewhere.example");
    let res = cookie_client()
        .get(format!("{}/lti/register", tool.base))
        .query(&[
            ("openid_configuration", config_url.as_str()),
            ("registration_token", REGISTRATION_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(crate::common::code(&res), "registration_issuer_mismatch");
    let page = res.text().await.unwrap();
    // The plain-words reason names the foreign issuer.
    assert!(
        page.contains(
            "names issuer &quot;https:&#x2F;&#x2F;lms.elsewhere.example&quot; on another site"
        ),
        "{page}"
    );
    let sv = tool.platform.services.lock().unwrap();
    assert!(sv.registrations.is_empty(), "nothing was registered");
    drop(sv);
    let n = tool
        .store
        .read_blocking(repo::lti::list_platforms)
        .unwrap()
        .len();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_registration_url_without_a_configuration_is_a_4xx_page() {
    let tool = Tool::start(tool_opts()).await;
    let res = cookie_client()
        .get(format!("{}/lti/register", tool.base))
        .send()
        .await
        .unwrap();
    assert_refused(res, "registration_invalid", "no openid_configuration").await;
}
