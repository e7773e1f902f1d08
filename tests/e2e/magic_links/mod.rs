//! The link door over real HTTP against the running server, with a real SMTP
//! server on loopback: every link and code is read from a delivered mail.
//! Time moves with a manual clock; every rejection asserts its exact code.
//! Each test runs on a temp SQLite file and, when TEST_DATABASE_URL is set
//! (required under CI=true), again on its own PostgreSQL schema.

pub(crate) mod browser;
pub(crate) mod harness;

use self::harness::*;
use chrono::Duration;
use coursegate_core::Clock;
use coursegate_store::repo;

#[actix_web::test]
async fn a_get_alone_never_signs_in_and_continue_does() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let l = app.learner("ann@example.com", &[("safety", None)]);
        app.issue(&l, Some("safety"), Some("access"));
        let mail = app.deliver_one("ann@example.com").await;
        assert!(mail.subject().unwrap().contains("Course safety"));
        let link = mail.find_link(&app.base).unwrap();
        assert!(link.contains("/l/cgl_"));
        let c = client();
        // HEAD and GET: a page, no session, nothing redeemed.
        let h = c.head(&link).send().await.unwrap();
        assert_eq!(h.status(), 200);
        let page = c.get(&link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        assert!(page
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|v| !v.to_str().unwrap().starts_with("cg_session")));
        let body = page.text().await.unwrap();
        assert!(body.contains("Continue to Course safety"));
        assert!(body.contains("a•••@example.com"));
        assert_eq!(
            c.get(app.url("/courses/safety"))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        assert_eq!(app.link_row(&link).redeem_count, 0);
        // A POST without the page's token, or from a browser that never saw the page: refused.
        let bad = c
            .post(&link)
            .form(&[("csrf", "nope")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            (bad.status().as_u16(), code(&bad)),
            (403, "csrf_failed".into())
        );
        let stranger = client()
            .post(&link)
            .form(&[("csrf", csrf_of(&body))])
            .send()
            .await
            .unwrap();
        assert_eq!(
            (stranger.status().as_u16(), code(&stranger)),
            (403, "csrf_failed".into())
        );
        // Continue: signed in, landing in the course the link was minted for.
        let ok = c
            .post(format!("{link}?next=https://evil.example/"))
            .form(&[("csrf", csrf_of(&body))])
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 303);
        assert_eq!(ok.headers()["location"], "/courses/safety");
        assert_eq!(
            c.get(app.url("/courses/safety"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        // An access link is reusable.
        let again = redeem(&client(), &link).await;
        assert_eq!(again.status(), 303);
        assert_eq!(app.audit_count("link.redeemed"), 2);
        assert_eq!(app.audit_count("link.viewed"), 2);
        // No webhook subscribes to link events here: none is written.
        for topic in ["link.opened", "link.redeemed"] {
            let rows = app
                .store
                .read_blocking(move |tx| repo::outbox::by_topic(tx, topic))
                .unwrap();
            assert!(rows.is_empty(), "{topic}: {rows:?}");
        }
    }
}

#[actix_web::test]
async fn a_one_time_link_allows_three_redemptions_within_ten_minutes() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let l = app.learner("bo@example.com", &[("safety", None)]);
        app.issue(&l, Some("safety"), Some("once"));
        let link = app
            .deliver_one("bo@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        for _ in 0..3 {
            assert_eq!(redeem(&client(), &link).await.status(), 303);
        }
        let r = redeem(&client(), &link).await;
        assert_eq!((r.status().as_u16(), code(&r)), (410, "link_used".into()));
        // A second one-time link: two uses, then the window closes.
        app.issue(&l, Some("safety"), Some("once"));
        let link2 = app
            .deliver_one("bo@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        assert_eq!(redeem(&client(), &link2).await.status(), 303);
        app.clock.advance(Duration::minutes(10));
        let r = redeem(&client(), &link2).await;
        assert_eq!((r.status().as_u16(), code(&r)), (410, "link_used".into()));
        // The older one-time link was superseded by the newer one.
        let r = client().get(&link).send().await.unwrap();
        assert_eq!(code(&r), "link_superseded");
    }
}

#[actix_web::test]
async fn expired_links_say_so_and_offer_a_fresh_link_in_one_click() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let l = app.learner("cy@example.com", &[("safety", None)]);
        app.issue(&l, Some("safety"), Some("once"));
        let link = app
            .deliver_one("cy@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        app.clock.advance(Duration::minutes(15));
        let c = client();
        let r = c.get(&link).send().await.unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (410, "link_expired".into())
        );
        let body = r.text().await.unwrap();
        assert!(body.contains("This link has expired"));
        assert!(body.contains("/fresh"));
        let f = c
            .post(format!("{link}/fresh"))
            .form(&[("csrf", csrf_of(&body))])
            .send()
            .await
            .unwrap();
        assert_eq!(f.status(), 200);
        let fresh_page = f.text().await.unwrap();
        let mail = app.deliver_one("cy@example.com").await;
        let fresh = mail.find_link(&app.base).unwrap();
        assert_ne!(fresh, link);
        assert_eq!(
            redeem(&client(), &fresh).await.headers()["location"],
            "/courses/safety"
        );
        // The self-service mail also carries a code for the browser that asked.
        let code_ = mail
            .find_code()
            .expect("a 6-digit code in the fresh-link mail");
        let r = c
            .post(app.url("/signin/code"))
            .form(&[
                ("csrf", csrf_of(&fresh_page).as_str()),
                ("code", code_.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{}", code(&r));
        assert_eq!(r.headers()["location"], "/courses/safety");
        // …and only there: another browser's attempt finds no code.
        let other = client();
        let page = other
            .get(app.url("/signin/sent"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let r = other
            .post(app.url("/signin/code"))
            .form(&[("csrf", csrf_of(&page).as_str()), ("code", code_.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(code(&r), "code_missing");
        // An unknown token: 404 link_invalid, and no fresh-link button.
        let bogus = app.url("/l/cgl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let r = client().get(&bogus).send().await.unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (404, "link_invalid".into())
        );
        assert!(!r.text().await.unwrap().contains("/fresh"));
    }
}

#[actix_web::test]
async fn regenerate_and_revoke_end_older_links_with_their_reason() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let l = app.learner("di@example.com", &[("safety", None)]);
        app.issue(&l, Some("safety"), Some("access"));
        let first = app
            .deliver_one("di@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        app.issue(&l, Some("safety"), Some("access"));
        let second = app
            .deliver_one("di@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        let r = redeem(&client(), &first).await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (410, "link_superseded".into())
        );
        assert_eq!(redeem(&client(), &second).await.status(), 303);
        let row = app.link_row(&second);
        let now = app.clock.now();
        app.store
            .write_blocking(|tx| {
                coursegate_core::links::revoke(
                    tx,
                    now,
                    &row.id,
                    &coursegate_core::audit::Actor::cli(),
                )
            })
            .unwrap();
        let r = redeem(&client(), &second).await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (410, "link_revoked".into())
        );
        assert_eq!(app.audit_count("link.revoked"), 1);
    }
}

#[actix_web::test]
async fn links_work_only_while_the_enrolment_is_active() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let end = app.clock.now() + Duration::days(3);
        let l = app.learner("ed@example.com", &[("safety", Some(end)), ("gdpr", None)]);
        app.issue(&l, Some("safety"), Some("access"));
        let safety = app
            .deliver_one("ed@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        assert_eq!(app.link_row(&safety).expires_at, end.naive_utc());
        app.issue(&l, Some("gdpr"), Some("access"));
        let gdpr = app
            .deliver_one("ed@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        // Revoked enrolment: the link still exists, the door says why it is closed.
        app.revoke_enrolment(&l, "gdpr");
        let r = redeem(&client(), &gdpr).await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (403, "enrolment_revoked".into())
        );
        // The access link ends with the enrolment.
        app.clock.advance(Duration::days(3));
        let r = redeem(&client(), &safety).await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (410, "link_expired".into())
        );
    }
}

#[actix_web::test]
async fn an_old_access_link_on_a_new_device_asks_for_a_code() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let l = app.learner("fi@example.com", &[("safety", None)]);
        app.issue(&l, Some("safety"), Some("access"));
        let link = app
            .deliver_one("fi@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        let laptop = client();
        assert_eq!(redeem(&laptop, &link).await.status(), 303);
        app.clock.advance(Duration::days(31));
        // The device that redeemed it before goes straight in.
        assert_eq!(redeem(&laptop, &link).await.status(), 303);
        // A new device: the page warns, Continue sends a code instead of signing in.
        let phone = client();
        let page = phone.get(&link).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("6-digit code"));
        let r = phone
            .post(&link)
            .form(&[("csrf", csrf_of(&page))])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let step = r.text().await.unwrap();
        assert!(step.contains("Enter the code"));
        assert_eq!(
            phone
                .get(app.url("/courses/safety"))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        let mail = app.deliver_one("fi@example.com").await;
        assert!(mail.subject().unwrap().contains("security code"));
        let code_ = mail.find_code().unwrap();
        let wrong = if code_ == "000000" {
            "111111"
        } else {
            "000000"
        };
        let r = phone
            .post(format!("{link}/code"))
            .form(&[("csrf", csrf_of(&step).as_str()), ("code", wrong)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "code_invalid".into())
        );
        // The code works only in the browser it was sent for.
        let other = client();
        let op = other.get(&link).send().await.unwrap().text().await.unwrap();
        let r = other
            .post(format!("{link}/code"))
            .form(&[("csrf", csrf_of(&op).as_str()), ("code", code_.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "code_missing".into())
        );
        let r = phone
            .post(format!("{link}/code"))
            .form(&[("csrf", csrf_of(&step).as_str()), ("code", code_.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/courses/safety");
        assert_eq!(app.audit_count("link.stepup_required"), 1);
        assert_eq!(app.audit_count("link.stepup_passed"), 1);
        assert_eq!(app.audit_count("code.failed"), 1);
        // Now bound: no more codes on the phone.
        assert_eq!(redeem(&phone, &link).await.status(), 303);
    }
}

#[actix_web::test]
async fn signin_answers_the_same_for_known_unknown_and_throttled_addresses() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        app.learner("gi@example.com", &[("safety", None)]);
        let mut seen = Vec::new();
        for email in ["gi@example.com", "nobody@example.com", "gi@example.com"] {
            let (status, location, body) = app.signin(&client(), email, "").await;
            seen.push((status, location, body));
        }
        assert!(seen.iter().all(|s| s == &seen[0]), "{seen:?}");
        assert_eq!(seen[0].0, 303);
        app.deliver().await;
        // Only the first request for the known address sent anything.
        assert_eq!(app.sink.messages().len(), 1);
        assert_eq!(app.audit_count("signin.unknown_address"), 1);
        assert_eq!(app.audit_count("signin.throttled"), 1);
    }
}

#[actix_web::test]
async fn rate_limits_are_kept_in_the_database() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        app.learner("hu@example.com", &[("safety", None)]);
        let c = client();
        for i in 0..7 {
            app.signin(&c, "hu@example.com", "").await;
            if i < 6 {
                app.clock.advance(Duration::seconds(61));
            }
        }
        app.deliver().await;
        // 1 per 60 s held every time; 5 per hour capped the seven minutes of tries.
        assert_eq!(app.sink.messages_to("hu@example.com").len(), 5);
        app.clock.advance(Duration::hours(1));
        app.signin(&c, "hu@example.com", "").await;
        app.deliver().await;
        assert_eq!(app.sink.messages_to("hu@example.com").len(), 6);
        // Per IP: 30 per 5 minutes, whatever the address.
        app.clock.advance(Duration::minutes(5));
        let before = app.audit_count("signin.throttled");
        for i in 0..31 {
            app.signin(&c, &format!("x{i}@example.org"), "").await;
        }
        assert_eq!(app.audit_count("signin.throttled") - before, 1);
    }
}

#[actix_web::test]
async fn the_code_completes_sign_in_in_the_browser_that_asked() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        app.learner("io@example.com", &[("safety", None)]);
        let laptop = client();
        let (_, location, _) = app
            .signin(&laptop, "io@example.com", "https://evil.example/")
            .await;
        assert_eq!(location, "/signin/sent");
        let mail = app.deliver_one("io@example.com").await;
        let code_ = mail.find_code().unwrap();
        assert!(mail.find_link(&app.base).unwrap().contains("/l/cgl_"));
        let page = laptop
            .get(app.url("/signin/sent"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // The phone (another browser) cannot use the code.
        let phone = client();
        let pp = phone
            .get(app.url("/signin/sent"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let r = phone
            .post(app.url("/signin/code"))
            .form(&[("csrf", csrf_of(&pp).as_str()), ("code", code_.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "code_missing".into())
        );
        // Open-redirect attempts through `next` land on the dashboard.
        for evil in ["https://evil.example/", "//evil.example", "/\\evil.example"] {
            let r = laptop
                .post(app.url("/signin/code"))
                .form(&[
                    ("csrf", csrf_of(&page).as_str()),
                    ("code", "12345x"),
                    ("next", evil),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(code(&r), "code_invalid");
        }
        let r = laptop
            .post(app.url("/signin/code"))
            .form(&[
                ("csrf", csrf_of(&page).as_str()),
                ("code", code_.as_str()),
                ("next", "//evil.example"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/");
        assert_eq!(
            laptop
                .get(app.url("/courses/safety"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        // The code and its link are one credential: the link is spent.
        let link = mail.find_link(&app.base).unwrap();
        let r = redeem(&client(), &link).await;
        assert_eq!(code(&r), "link_used");
    }
}

#[actix_web::test]
async fn five_wrong_codes_lock_the_code() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        app.learner("ju@example.com", &[("safety", None)]);
        let c = client();
        app.signin(&c, "ju@example.com", "").await;
        let code_ = app.deliver_one("ju@example.com").await.find_code().unwrap();
        let wrong = if code_ == "000000" {
            "111111"
        } else {
            "000000"
        };
        let page = c
            .get(app.url("/signin/sent"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut codes = Vec::new();
        for _ in 0..5 {
            let r = c
                .post(app.url("/signin/code"))
                .form(&[("csrf", csrf_of(&page).as_str()), ("code", wrong)])
                .send()
                .await
                .unwrap();
            codes.push(code(&r));
        }
        assert_eq!(
            codes,
            [
                "code_invalid",
                "code_invalid",
                "code_invalid",
                "code_invalid",
                "code_locked"
            ]
        );
        let r = c
            .post(app.url("/signin/code"))
            .form(&[("csrf", csrf_of(&page).as_str()), ("code", code_.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(code(&r), "code_locked");
        assert_eq!(app.audit_count("code.failed"), 5);
        // And a code expires after 10 minutes.
        app.clock.advance(Duration::minutes(2));
        app.signin(&c, "ju@example.com", "").await;
        let code2 = app.deliver_one("ju@example.com").await.find_code().unwrap();
        app.clock.advance(Duration::minutes(10));
        let r = c
            .post(app.url("/signin/code"))
            .form(&[("csrf", csrf_of(&page).as_str()), ("code", code2.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(code(&r), "code_expired");
    }
}

#[actix_web::test]
async fn smtp_down_then_up_delivers_every_mail_exactly_once() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let mut learners = Vec::new();
        for i in 0..3 {
            learners.push(app.learner(&format!("k{i}@example.com"), &[("safety", None)]));
        }
        app.sink.set_down(true);
        for l in &learners {
            app.issue(l, Some("safety"), None);
        }
        let p = app.pass().await;
        assert_eq!((p.sent, p.retry, p.dead), (0, 3, 0));
        // Nothing is due before the back-off ends.
        assert_eq!(app.pass().await.retry, 0);
        app.clock.advance(Duration::seconds(30));
        assert_eq!(app.pass().await.retry, 3);
        app.sink.set_down(false);
        app.clock.advance(Duration::seconds(60));
        assert_eq!(app.pass().await.sent, 3);
        for _ in 0..3 {
            app.clock.advance(Duration::hours(1));
            assert_eq!(app.pass().await, Default::default());
        }
        let msgs = app.sink.messages();
        assert_eq!(msgs.len(), 3);
        let mut ids: Vec<String> = msgs.iter().map(|m| m.message_id().unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3);
        // The audit log records the relay's answer with the Message-ID; the
        // outbox keeps no token once the mail is gone.
        assert_eq!(app.audit_count("email.sent"), 3);
        let rows = app
            .store
            .read_blocking(|tx| repo::outbox::by_topic(tx, "email.learner_link"))
            .unwrap();
        assert!(rows
            .iter()
            .all(|r| r.status == "sent" && !r.payload.contains("cgl_")));
        let audit = app.audit_details("email.sent");
        assert!(audit
            .iter()
            .any(|d| d.contains(&ids[0]) && d.contains("250")));
    }
}

#[actix_web::test]
async fn a_permanent_rejection_makes_the_mail_dead() {
    let app = App::spawn(None).await;
    let l = app.learner("lo@example.com", &[("safety", None)]);
    app.sink.reject_rcpt_permanently("lo@example.com");
    app.issue(&l, Some("safety"), None);
    let p = app.pass().await;
    assert_eq!((p.sent, p.retry, p.dead), (0, 0, 1));
    assert_eq!(app.audit_count("email.dead"), 1);
}

#[actix_web::test]
async fn staff_sign_in_by_one_time_link_and_preview_as_learner() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let l = app.learner("mo@example.com", &[("safety", None)]);
        let staff = client();
        let st = app.staff_link("owner@example.com");
        let link = app
            .deliver_one("owner@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        assert!(link.contains("/l/cgt_"));
        let r = redeem(&staff, &link).await;
        assert_eq!(r.headers()["location"], "/staff");
        let r = redeem(&client(), &link).await;
        assert_eq!(code(&r), "link_used");
        drop(st);
        // Find, issue with the URL shown once, status, revoke.
        let home = staff
            .get(app.url("/staff?q=mo@"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(home.contains("mo@example.com"));
        let lp = staff
            .get(app.url(&format!("/staff/learners/{l}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = csrf_of(&lp);
        let issued = staff
            .post(app.url(&format!("/staff/learners/{l}/links")))
            .form(&[
                ("csrf", csrf.as_str()),
                ("course", "safety"),
                ("kind", "access"),
                ("send", "1"),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .replace("&#x2F;", "/");
        assert!(issued.contains("/l/cgl_"), "{issued}");
        let mail = app.deliver_one("mo@example.com").await;
        let sent_link = mail.find_link(&app.base).unwrap();
        assert!(issued.contains(&sent_link));
        let status = |page: &str| page.contains("status-sent");
        let lp = staff
            .get(app.url(&format!("/staff/learners/{l}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(status(&lp), "{lp}");
        // A scanner-looking GET marks it.
        reqwest::Client::new()
            .get(&sent_link)
            .header("user-agent", "Mozilla/5.0 HeadlessChrome SafeLinks")
            .send()
            .await
            .unwrap();
        let lp = staff
            .get(app.url(&format!("/staff/learners/{l}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(lp.contains("status-opened_by_scanner"));
        // Preview: separate cookie, read-only, the staff session untouched.
        let r = staff
            .post(app.url(&format!("/staff/learners/{l}/preview")))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let dash = staff
            .get(app.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(dash.contains("Preview as learner"));
        assert!(
            !dash.contains("action=\"/signout\""),
            "no learner sign-out inside a preview"
        );
        assert_eq!(
            staff.get(app.url("/staff")).send().await.unwrap().status(),
            200
        );
        // The preview entry names who, from where.
        let previewed = app.audit_entries("learner.previewed");
        assert_eq!(previewed.len(), 1);
        assert_eq!(previewed[0].actor_kind, "staff");
        assert!(previewed[0].ip.is_some(), "{:?}", previewed[0]);
        // Ending the preview needs its CSRF token, ends it on the server and
        // leaves the staff session as it was.
        let r = staff
            .post(app.url("/preview/end"))
            .form(&[("csrf", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), code(&r)), (403, "csrf_failed".into()));
        let r = staff
            .post(app.url("/preview/end"))
            .form(&[("csrf", csrf_of(&dash).as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/staff");
        let after = staff
            .get(app.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!after.contains("Preview as learner"), "{after}");
        assert_eq!(
            staff.get(app.url("/staff")).send().await.unwrap().status(),
            200,
            "the staff session survives the end of the preview"
        );
        // Revoke from the staff page.
        let id = app.link_row(&sent_link).id;
        let r = staff
            .post(app.url(&format!("/staff/links/{id}/revoke")))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(code(&redeem(&client(), &sent_link).await), "link_revoked");
    }
}

#[actix_web::test]
async fn sign_out_everywhere_ends_every_session() {
    let app = App::spawn(None).await;
    let l = app.learner("no@example.com", &[("safety", None)]);
    app.issue(&l, Some("safety"), Some("access"));
    let link = app
        .deliver_one("no@example.com")
        .await
        .find_link(&app.base)
        .unwrap();
    let (a, b) = (client(), client());
    redeem(&a, &link).await;
    redeem(&b, &link).await;
    let page = a
        .get(app.url("/courses/safety"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = a
        .post(app.url("/signout/everywhere"))
        .form(&[("csrf", csrf_of(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = b.get(app.url("/courses/safety")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), code(&r)),
        (401, "not_signed_in".into())
    );
}

/// Parallel requests cannot stretch the limits: on PostgreSQL the link and
/// code rows are locked for the transaction that counts them.
#[actix_web::test]
async fn parallel_redemptions_and_guesses_respect_the_limits() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let l = app.learner("pa@example.com", &[("safety", None)]);
        app.issue(&l, Some("safety"), Some("once"));
        let link = app
            .deliver_one("pa@example.com")
            .await
            .find_link(&app.base)
            .unwrap();
        let tries = (0..8).map(|_| {
            let link = link.clone();
            async move { redeem(&client(), &link).await.status().as_u16() }
        });
        let mut statuses = futures_util::future::join_all(tries).await;
        statuses.sort_unstable();
        assert_eq!(statuses, [303, 303, 303, 410, 410, 410, 410, 410]);
        assert_eq!(app.audit_count("link.redeemed"), 3);

        app.clock.advance(Duration::minutes(2));
        let c = client();
        app.signin(&c, "pa@example.com", "").await;
        let right = app.deliver_one("pa@example.com").await.find_code().unwrap();
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        let page = c
            .get(app.url("/signin/sent"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = csrf_of(&page);
        let guesses = (0..12).map(|_| {
            let (c, csrf, url) = (c.clone(), csrf.clone(), app.url("/signin/code"));
            async move {
                let r = c
                    .post(url)
                    .form(&[("csrf", csrf.as_str()), ("code", wrong)])
                    .send()
                    .await
                    .unwrap();
                code(&r)
            }
        });
        let mut codes = futures_util::future::join_all(guesses).await;
        codes.sort();
        let invalid = codes.iter().filter(|c| *c == "code_invalid").count();
        let locked = codes.iter().filter(|c| *c == "code_locked").count();
        assert_eq!((invalid, locked), (4, 8), "{codes:?}");
        assert_eq!(app.audit_count("code.failed"), 5);
    }
}
