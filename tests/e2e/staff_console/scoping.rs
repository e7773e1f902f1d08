//! Instructor scoping over real HTTP: an owner assigns courses to an
//! instructor from the team page; the instructor then sees and changes only
//! those courses, their enrolments and the learners enrolled in them, in
//! every list and on every direct address (refused with the exact reason).
//! Also: the outbox view of a rendered email hides the link and the code,
//! and a CSV sheet arrives as a multipart file upload. Runs on SQLite and,
//! with TEST_DATABASE_URL, on PostgreSQL.

use coursegate_core::{staff::Role, CoreError};

use super::{get, post, reason, staff_as};
use crate::magic_links::harness::{backends, client, code, csrf_of, redeem, App};

const OUT_OF_GDPR: &str = "The course &quot;gdpr&quot; is not one of your courses. Ask an owner or admin to assign it to you.";
const NOT_MY_LEARNER: &str = "This learner is not enrolled in any of your courses. Ask an owner or admin if you need to see them.";

fn staff_id(app: &App, email: &'static str) -> String {
    app.store
        .read_blocking(move |tx| {
            Ok::<_, CoreError>(
                coursegate_store::repo::staff::find_by_email(tx, email)?
                    .unwrap()
                    .id,
            )
        })
        .unwrap()
}

fn enrolment_of(app: &App, learner: &str, slug: &str) -> String {
    let (l, s) = (learner.to_string(), slug.to_string());
    app.store
        .read_blocking(move |tx| {
            let c = coursegate_core::courses::by_slug(tx, &s)?;
            Ok::<_, CoreError>(
                coursegate_store::repo::enrolments::find(tx, &l, &c.id)?
                    .unwrap()
                    .id,
            )
        })
        .unwrap()
}

async fn refused(r: reqwest::Response, status: u16, code_: &str, why: &str) {
    assert_eq!((r.status().as_u16(), code(&r)), (status, code_.to_string()));
    assert_eq!(reason(&r.text().await.unwrap()), why);
}

/// A multipart/form-data body with a CSRF token, and `csv` as a file part.
pub(crate) fn multipart(csrf: &str, filename: &str, csv: &[u8]) -> (String, Vec<u8>) {
    let b = "cgtestboundary7d1f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"csv\"\r\n\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(csv);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

#[actix_web::test]
async fn a_scoped_instructor_sees_and_changes_only_their_courses() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let owner = staff_as(&app, "olga@example.com", Role::Owner).await;
        let support = staff_as(&app, "sue@example.com", Role::Support).await;
        let inst = staff_as(&app, "ian@example.com", Role::Instructor).await;
        let iid = staff_id(&app, "ian@example.com");
        let both = app.learner("bo@example.com", &[("safety", None), ("gdpr", None)]);
        let gus = app.learner("gus@example.com", &[("gdpr", None)]);
        let sal = app.learner("sal@example.com", &[("safety", None)]);

        // Nothing assigned yet: every page says to ask an admin.
        for p in ["/staff/dashboard", "/staff", "/staff/courses"] {
            let (s, _, body) = get(&inst, &app, p).await;
            assert_eq!(s, 200, "{p}");
            assert!(body.contains("No courses assigned to you yet"), "{p}");
            assert!(body.contains("Ask an owner or admin"), "{p}");
            assert!(!body.contains("bo@example.com"), "{p}");
            assert!(!body.contains("Course safety"), "{p}");
        }
        let (s, k, body) = get(&inst, &app, "/staff/courses/safety").await;
        assert_eq!((s, k.as_str()), (403, "course_out_of_scope"));
        assert!(
            reason(&body).starts_with("The course &quot;safety&quot; is not one of your courses.")
        );

        // Only owners and admins assign, with a valid token.
        let (s, k, body) = get(&inst, &app, "/staff/team").await;
        assert_eq!((s, k.as_str()), (403, "forbidden"));
        assert_eq!(
            reason(&body),
            "Your role (instructor) cannot manage the team."
        );
        let page = format!("/staff/team/{iid}");
        let action = format!("/staff/team/{iid}/courses");
        let r = post(
            &support,
            &app,
            "/staff/dashboard",
            &action,
            &[("course", "gdpr")],
        )
        .await;
        refused(
            r,
            403,
            "forbidden",
            "Your role (support) cannot assign courses.",
        )
        .await;
        let r = owner
            .post(app.url(&action))
            .form(&[("csrf", "forged"), ("course", "gdpr")])
            .send()
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), code(&r)), (403, "csrf_failed".into()));
        let (_, _, team) = get(&owner, &app, "/staff/team").await;
        assert!(team.contains(&format!("href=\"/staff/team/{iid}\"")));
        assert!(team.contains("none yet: open the instructor to assign courses"));
        let (s, _, by_role) = get(&owner, &app, "/staff/team?sort=role").await;
        assert_eq!(s, 200);
        assert!(by_role.contains("<option value=\"role\" selected>"));
        let r = post(&owner, &app, &page, &action, &[("course", "safety")]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], page.as_str());
        let (_, _, detail) = get(&owner, &app, &page).await;
        assert!(detail.contains("<code>safety</code>"));
        assert!(detail.contains("<option value=\"gdpr\">Course gdpr</option>"));
        // An owner is not limited to courses.
        let oid = staff_id(&app, "olga@example.com");
        let r = post(
            &owner,
            &app,
            &page,
            &format!("/staff/team/{oid}/courses"),
            &[("course", "gdpr")],
        )
        .await;
        assert_eq!(
            (r.status().as_u16(), code(&r)),
            (400, "invalid_input".into())
        );
        assert_eq!(app.audit_count("staff.course_assigned"), 1);

        // Dashboard: counts and charts of the assigned course only.
        let (_, _, dash) = get(&inst, &app, "/staff/dashboard").await;
        assert!(
            dash.contains("<span class=\"stat\">2</span> learners"),
            "{dash}"
        );
        assert!(dash.contains("<span class=\"stat\">1</span> courses"));
        assert!(dash.contains("<span class=\"stat\">2</span> enrolments"));
        assert!(!dash.contains("messages waiting"), "no outbox counts");
        assert_eq!(dash.matches("<svg class=\"chart\"").count(), 1);
        assert!(dash.contains("Course safety") && !dash.contains("Course gdpr"));
        assert!(!dash.contains("No courses assigned to you yet"));
        let (_, _, odash) = get(&owner, &app, "/staff/dashboard").await;
        assert_eq!(odash.matches("<svg class=\"chart\"").count(), 2);
        assert!(odash.contains("<span class=\"stat\">3</span> learners"));

        // Lists: courses and learner search.
        let (_, _, list) = get(&inst, &app, "/staff/courses").await;
        assert!(list.contains("href=\"/staff/courses/safety\""));
        assert!(!list.contains("href=\"/staff/courses/gdpr\""));
        let (_, _, found) = get(&inst, &app, "/staff?sort=email").await;
        assert!(found.contains("bo@example.com") && found.contains("sal@example.com"));
        assert!(!found.contains("gus@example.com"));
        assert!(found.find("bo@example.com") < found.find("sal@example.com"));
        assert!(
            !found.contains("<option value=\"gdpr\""),
            "the enrol form offers their courses only"
        );
        let (_, _, none) = get(&inst, &app, "/staff?q=gus").await;
        assert!(!none.contains("gus@example.com"));
        let (_, _, all) = get(&owner, &app, "/staff?q=gus").await;
        assert!(all.contains("gus@example.com"));

        // Direct addresses of the other course are refused, reads included.
        for p in ["/staff/courses/gdpr", "/staff/courses/gdpr/lessons/new"] {
            let (s, k, body) = get(&inst, &app, p).await;
            assert_eq!((s, k.as_str()), (403, "course_out_of_scope"), "{p}");
            assert_eq!(reason(&body), OUT_OF_GDPR, "{p}");
        }
        let r = post(
            &inst,
            &app,
            "/staff/courses/safety",
            "/staff/courses/gdpr",
            &[("title", "Mine now"), ("link_policy", "access")],
        )
        .await;
        refused(r, 403, "course_out_of_scope", OUT_OF_GDPR).await;
        let r = post(
            &inst,
            &app,
            "/staff/courses/safety",
            "/staff/courses/gdpr/lessons",
            &[("title", "X"), ("body", "x"), ("action", "save")],
        )
        .await;
        refused(r, 403, "course_out_of_scope", OUT_OF_GDPR).await;
        let (s, _, _) = get(&inst, &app, "/staff/courses/safety").await;
        assert_eq!(s, 200);
        let r = post(
            &inst,
            &app,
            "/staff/courses/safety",
            "/staff/courses/safety",
            &[
                ("title", "Safety, revised"),
                ("published", "1"),
                ("link_policy", "access"),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);

        // Learners: only those enrolled in their courses, only those enrolments.
        let (s, k, body) = get(&inst, &app, &format!("/staff/learners/{gus}")).await;
        assert_eq!((s, k.as_str()), (403, "learner_out_of_scope"));
        assert_eq!(reason(&body), NOT_MY_LEARNER);
        let (s, _, body) = get(&inst, &app, &format!("/staff/learners/{both}")).await;
        assert_eq!(s, 200);
        assert!(body.contains("Safety, revised"));
        assert!(
            !body.contains("Course gdpr"),
            "the other enrolment is not shown"
        );
        let (_, _, body) = get(&owner, &app, &format!("/staff/learners/{both}")).await;
        assert!(body.contains("Course gdpr"));

        // Enrolment actions: the other course's enrolment is refused.
        let lp = format!("/staff/learners/{both}");
        let (theirs, mine) = (
            enrolment_of(&app, &both, "gdpr"),
            enrolment_of(&app, &both, "safety"),
        );
        let r = post(
            &inst,
            &app,
            &lp,
            &format!("/staff/enrolments/{theirs}/revoke"),
            &[],
        )
        .await;
        refused(r, 403, "course_out_of_scope", OUT_OF_GDPR).await;
        let r = post(
            &inst,
            &app,
            &lp,
            &format!("/staff/enrolments/{theirs}/extend"),
            &[("until", "2027-01-31")],
        )
        .await;
        refused(r, 403, "course_out_of_scope", OUT_OF_GDPR).await;
        let r = post(
            &inst,
            &app,
            &lp,
            "/staff/enrolments/bulk",
            &[
                ("op", "revoke"),
                ("enrolment", &mine),
                ("enrolment", &theirs),
                ("back", &both),
            ],
        )
        .await;
        refused(r, 403, "course_out_of_scope", OUT_OF_GDPR).await;
        assert_eq!(
            app.audit_count("enrolment.revoked"),
            0,
            "the bulk change rolled back as a whole"
        );
        let r = post(
            &inst,
            &app,
            &lp,
            &format!("/staff/enrolments/{mine}/extend"),
            &[("until", "2027-01-31")],
        )
        .await;
        assert_eq!(r.status(), 303);
        let r = post(
            &inst,
            &app,
            &format!("/staff/learners/{sal}"),
            &format!("/staff/learners/{sal}/enrol"),
            &[("course", "gdpr")],
        )
        .await;
        refused(r, 403, "course_out_of_scope", OUT_OF_GDPR).await;
        let r = post(
            &inst,
            &app,
            "/staff",
            "/staff/learners",
            &[("email", "new@example.com"), ("course", "gdpr")],
        )
        .await;
        refused(r, 403, "course_out_of_scope", OUT_OF_GDPR).await;
        let r = post(
            &inst,
            &app,
            &format!("/staff/learners/{sal}"),
            &format!("/staff/learners/{sal}/links"),
            &[("course", "gdpr"), ("send", "1")],
        )
        .await;
        refused(r, 403, "course_out_of_scope", OUT_OF_GDPR).await;

        // Invitations: a row for the other course is an error of that row.
        let sheet =
            "email,name,course\r\nnina@example.com,Nina,safety\r\nolaf@example.com,Olaf,gdpr\r\n";
        let r = post(
            &inst,
            &app,
            "/staff/invitations",
            "/staff/invitations/preview",
            &[("csv", sheet)],
        )
        .await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(
            page.contains("<strong>1</strong> to send · <strong>1</strong> with errors"),
            "{page}"
        );
        assert!(page.contains(
            "<li>course: &quot;gdpr&quot; is not one of your courses (course_out_of_scope)</li>"
        ));
        let r = post(
            &inst,
            &app,
            "/staff/invitations",
            "/staff/invitations/send",
            &[("csv", sheet)],
        )
        .await;
        assert_eq!(r.status(), 303);
        let batch = r.headers()["location"].to_str().unwrap().to_string();
        let (s, _, done) = get(&inst, &app, &batch).await;
        assert_eq!(s, 200);
        assert!(
            done.contains("1 invitation(s) queued; 1 row(s) skipped."),
            "{done}"
        );
        assert!(done.contains("<td>nina@example.com</td>"));
        assert!(!done.contains("olaf@example.com"));
        let olaf = app
            .store
            .read_blocking(|tx| {
                Ok::<_, CoreError>(coursegate_store::repo::learners::find_by_email(
                    tx,
                    "olaf@example.com",
                )?)
            })
            .unwrap();
        assert!(olaf.is_none(), "nothing was written for the refused row");

        // A course the instructor creates is assigned to them.
        let r = post(
            &inst,
            &app,
            "/staff/courses/new",
            "/staff/courses",
            &[
                ("slug", "ladders"),
                ("title", "Ladders"),
                ("link_policy", "access"),
            ],
        )
        .await;
        assert_eq!(r.status(), 303);
        let (s, _, _) = get(&inst, &app, "/staff/courses/ladders").await;
        assert_eq!(s, 200);
        let (_, _, list) = get(&inst, &app, "/staff/courses").await;
        assert!(list.contains("href=\"/staff/courses/ladders\""));
        assert_eq!(app.audit_count("staff.course_assigned"), 2);

        // Taking the course away takes everything with it.
        let r = post(
            &owner,
            &app,
            &format!("/staff/team/{iid}"),
            &format!("/staff/team/{iid}/courses/safety/remove"),
            &[],
        )
        .await;
        assert_eq!(r.status(), 303);
        assert_eq!(app.audit_count("staff.course_unassigned"), 1);
        let (s, k, _) = get(&inst, &app, "/staff/courses/safety").await;
        assert_eq!((s, k.as_str()), (403, "course_out_of_scope"));
        let (s, k, _) = get(&inst, &app, &lp).await;
        assert_eq!((s, k.as_str()), (403, "learner_out_of_scope"));
    }
}

#[actix_web::test]
async fn the_outbox_shows_a_rendered_email_without_its_link_or_code() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let owner = staff_as(&app, "olga@example.com", Role::Owner).await;
        let inst = staff_as(&app, "ian@example.com", Role::Instructor).await;
        let l = app.learner("dee@example.com", &[("safety", None)]);
        // A one-time sign-in (link and code) from the learner's own browser.
        let browser = client();
        let (_, _, signin) = get(&browser, &app, "/signin").await;
        let r = browser
            .post(app.url("/signin"))
            .form(&[
                ("csrf", csrf_of(&signin).as_str()),
                ("email", "dee@example.com"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let id = app
            .store
            .read_blocking(|tx| {
                Ok::<_, CoreError>(
                    coursegate_store::repo::outbox::list(
                        tx,
                        Some("pending"),
                        Some("email"),
                        Default::default(),
                    )?
                    .pop()
                    .expect("a queued mail"),
                )
            })
            .unwrap();
        let payload: serde_json::Value = serde_json::from_str(&id.payload).unwrap();
        let link = payload["context"]["link"].as_str().unwrap().to_string();
        let token = link.rsplit('/').next().unwrap().to_string();
        let code_ = payload["context"]["code"].as_str().map(str::to_string);
        let (_, _, list) = get(&owner, &app, "/staff/outbox?status=pending").await;
        assert!(list.contains(&format!("href=\"/staff/outbox/{}\"", id.id)));
        let r = owner
            .get(app.url(&format!("/staff/outbox/{}", id.id)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("<dd id=\"mail-to\">Pat &lt;dee@example.com&gt;</dd>"),
            "{body}"
        );
        assert!(body.contains("<pre class=\"mail-text\" id=\"mail-text\">"));
        assert!(body.contains("sandbox=\"\""));
        assert!(
            body.contains("srcdoc=\"&lt;"),
            "the HTML part is escaped into srcdoc"
        );
        assert!(body.contains("[sign-in link hidden in the console]"));
        assert!(
            !body.contains(&token),
            "the link token never reaches the page"
        );
        assert!(!body.contains(&link));
        if let Some(c) = &code_ {
            assert!(
                !body.contains(c.as_str()),
                "the code never reaches the page"
            );
            assert!(body.contains("[code hidden]"));
        }
        // The page changed nothing: the mail still goes out with its link.
        let mail = app.deliver_one("dee@example.com").await;
        assert_eq!(mail.find_link(&app.base).unwrap(), link);
        let (s, _, sent) = get(&owner, &app, &format!("/staff/outbox/{}", id.id)).await;
        assert_eq!(s, 200);
        assert!(sent.contains("<dd>sent</dd>"));
        assert!(!sent.contains(&token));
        // Roles and unknown ids.
        let (s, k, body) = get(&inst, &app, &format!("/staff/outbox/{}", id.id)).await;
        assert_eq!((s, k.as_str()), (403, "forbidden"));
        assert_eq!(
            reason(&body),
            "Your role (instructor) cannot see the outbox."
        );
        let (s, k, _) = get(&owner, &app, "/staff/outbox/nope").await;
        assert_eq!((s, k.as_str()), (404, "not_found"));
        let _ = l;
    }
}

#[actix_web::test]
async fn a_sheet_is_uploaded_as_a_file_then_followed_through_the_outbox() {
    for pg in backends() {
        let app = App::spawn(pg).await;
        let owner = staff_as(&app, "olga@example.com", Role::Owner).await;
        let (_, _, form) = get(&owner, &app, "/staff/invitations").await;
        assert!(form.contains("enctype=\"multipart/form-data\""));
        assert!(form.contains("<label for=\"inv-file\">"));
        assert!(form.contains("type=\"file\" accept=\".csv,text/csv\""));
        let csrf = csrf_of(&form);
        // UTF-8 with a byte order mark, semicolons, CRLF, one bad row.
        let sheet = "\u{feff}email;name;course;start;end;reference\r\nzoe@example.com;Zoë Ünal;safety;;2027-01-31;PO 9\r\nbad-address;X;safety;;;\r\n";
        let (ct, body) = multipart(&csrf, "sheet.csv", sheet.as_bytes());
        let r = owner
            .post(app.url("/staff/invitations/preview"))
            .header("content-type", ct.clone())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(
            page.contains("From the file <code>sheet.csv</code>."),
            "{page}"
        );
        assert!(
            page.contains("<strong>1</strong> to send · <strong>1</strong> with errors"),
            "{page}"
        );
        assert!(page.contains("<td>Zoë Ünal</td>"));
        // The upload checks the token too, and refuses what is not UTF-8 or too big.
        let (ct2, forged) = multipart("forged", "sheet.csv", sheet.as_bytes());
        let r = owner
            .post(app.url("/staff/invitations/preview"))
            .header("content-type", ct2)
            .body(forged)
            .send()
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), code(&r)), (403, "csrf_failed".into()));
        let (ct3, latin1) = multipart(
            &csrf,
            "sheet.csv",
            b"email,name,course\r\nz@example.com,Z\xf6e,safety\r\n",
        );
        let r = owner
            .post(app.url("/staff/invitations/preview"))
            .header("content-type", ct3)
            .body(latin1)
            .send()
            .await
            .unwrap();
        refused(r, 400, "csv_not_utf8", "The file is not UTF-8 text. In the spreadsheet, save it as “CSV UTF-8” and upload it again.").await;
        let big = format!(
            "email,name,course\r\n{}",
            "a@example.com,A,safety\r\n".repeat(50_000)
        );
        let (ct4, big) = multipart(&csrf, "big.csv", big.as_bytes());
        let r = owner
            .post(app.url("/staff/invitations/preview"))
            .header("content-type", ct4)
            .body(big)
            .send()
            .await
            .unwrap();
        refused(r, 413, "csv_too_large", "The sheet is larger than 1024 KiB, the most one upload may hold. Split it into smaller sheets of at most 1000 rows and upload them one after another.").await;
        // Confirm: the hidden copy of the sheet goes back; the batch page follows it.
        let r = owner
            .post(app.url("/staff/invitations/send"))
            .form(&[("csrf", csrf.as_str()), ("csv", sheet)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let batch = r.headers()["location"].to_str().unwrap().to_string();
        assert!(batch.starts_with("/staff/invitations/batches/"));
        let (_, _, progress) = get(&owner, &app, &batch).await;
        assert!(
            progress.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
            "refreshes while pending"
        );
        assert!(progress.contains("<strong>1</strong> queued · <strong>0</strong> failed, retrying · <strong>0</strong> sent · <strong>0</strong> dead"), "{progress}");
        let mail = app.deliver_one("zoe@example.com").await;
        let link = mail.find_link(&app.base).unwrap();
        let (_, _, progress) = get(&owner, &app, &batch).await;
        assert!(progress.contains("<strong>0</strong> queued · <strong>0</strong> failed, retrying · <strong>1</strong> sent · <strong>0</strong> dead"), "{progress}");
        assert!(
            !progress.contains("http-equiv=\"refresh\""),
            "no refresh once done"
        );
        let learner = client();
        let r = redeem(&learner, &link).await;
        assert_eq!(r.headers()["location"], "/courses/safety");
        let (s, k, _) = get(&owner, &app, "/staff/invitations/batches/nope").await;
        assert_eq!((s, k.as_str()), (404, "not_found"));
    }
}
