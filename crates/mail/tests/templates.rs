//! Every email template renders with a realistic context, escapes HTML, and
//! says what the issue asks of it (who, which course, why, until when, the code,
//! what to do when the link does not work).

use std::path::PathBuf;

use coursegate_mail::{MailError, Templates, TEMPLATE_NAMES};
use serde_json::{json, Value};

const LINK: &str = "https://learn.acme.example/l/lsn1_Zm9vYmFyYmF6?x=1&y=2";

fn fixture() -> Value {
    json!({
        "site": {
            "name": "Acme Training",
            "support_email": "help@acme.example",
            "support_phone": "+44 20 7946 0000",
            "logo_url": "https://acme.example/logo.png",
            "url": "https://learn.acme.example/"
        },
        "learner": { "name": "Dana <script>alert(1)</script> Demo", "email": "dana@example.com" },
        "staff": { "name": "Sam <b>Staff</b>", "email": "sam@acme.example", "role": "admin" },
        "course": { "title": "Data protection & you" },
        "link": LINK,
        "code": "482913",
        "reference": "order 1234",
        "expires_at": "31 December 2026, 23:59 UTC",
        "expires_minutes": 15,
        "code_expires_minutes": 10,
        "signin_url": "https://learn.acme.example/signin"
    })
}

fn repo_email_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../templates/email")
}

#[test]
fn every_template_renders_and_escapes() {
    let t = Templates::embedded().unwrap();
    assert_eq!(t.names(), TEMPLATE_NAMES);
    for name in TEMPLATE_NAMES {
        let r = t.render(name, &fixture()).unwrap();
        assert!(!r.subject.is_empty(), "{name}");
        assert!(!r.subject.contains('\n'), "{name}: {:?}", r.subject);
        assert!(r.subject.contains("Acme Training"), "{name}: {}", r.subject);

        // Escaping: the HTML never carries the raw script tag, the text part is not HTML-escaped.
        assert!(!r.html.contains("<script>"), "{name} html unescaped");
        assert!(!r.html.contains("<b>Staff</b>"), "{name} html unescaped");
        assert!(
            !r.html.contains("Data protection & you"),
            "{name}: raw & in html"
        );
        assert!(!r.text.contains("&lt;"), "{name}: text is HTML-escaped");
        assert!(!r.text.contains("&amp;"), "{name}: text is HTML-escaped");

        // Branding and help.
        assert!(r.html.contains("help@acme.example"), "{name}");
        assert!(r.text.contains("help@acme.example"), "{name}");
        assert!(r.text.contains("+44 20 7946 0000"), "{name}");
        assert!(r.html.contains("logo.png"), "{name}");
        // No tracking pixels, no unsubscribe machinery.
        assert_eq!(r.html.matches("<img").count(), 1, "{name}: only the logo");
        assert!(!r.html.to_lowercase().contains("unsubscribe"), "{name}");
        // Text is tidy.
        assert!(!r.text.contains("\n\n\n"), "{name}");
        assert!(!r.text.starts_with('\n'), "{name}");
        assert!(r.text.lines().all(|l| l == l.trim_end()), "{name}");
    }
}

#[test]
fn learner_link_says_who_what_why_until_when_and_what_if() {
    let t = Templates::embedded().unwrap();
    let r = t.render("learner_link", &fixture()).unwrap();
    assert_eq!(
        r.subject,
        "Your access to Data protection & you from Acme Training"
    );
    let text = &r.text;
    for needle in [
        "Hello Dana <script>alert(1)</script> Demo,",
        "Acme Training has enrolled you in the course \"Data protection & you\" following your order 1234.",
        LINK,
        "The link works until 31 December 2026, 23:59 UTC.",
        "\n482913\n",
        "valid for 10 minutes",
        "Request a new link at https://learn.acme.example/signin with your email address (dana@example.com).",
        "Questions? Contact Acme Training at help@acme.example or by phone on +44 20 7946 0000.",
        "please do not forward this email",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let html = &r.html;
    assert!(html.contains("Dana &lt;script&gt;alert(1)&lt;&#x2F;script&gt; Demo"));
    assert!(html.contains("<strong>Data protection &amp; you</strong>"));
    assert!(html.contains("order 1234"));
    assert!(html.contains("482913"));
    assert!(html.contains("href=\"mailto:help@acme.example\""));
    assert!(html.contains("href=\"tel:+442079460000\""));
    // The link is an attribute and visible text, with & escaped.
    assert!(html.contains("lsn1_Zm9vYmFyYmF6?x=1&amp;y=2"));
}

#[test]
fn optional_parts_drop_out_cleanly() {
    let t = Templates::embedded().unwrap();
    let ctx = json!({
        "site": { "name": "Acme Training" },
        "course": { "title": "Safety basics" },
        "link": LINK,
    });
    let r = t.render("learner_link", &ctx).unwrap();
    assert!(r.text.starts_with("Hello,\n"), "{}", r.text);
    assert!(r.text.contains("for as long as you are enrolled"));
    assert!(r.text.contains("Ask Acme Training for a new link."));
    assert!(!r.text.contains("code"), "{}", r.text);
    assert!(!r.text.contains("Questions?"));
    assert!(!r.html.contains("<img"));
    assert!(!r.html.contains("following your"));

    let r = t
        .render(
            "signin_link",
            &json!({ "site": { "name": "Acme" }, "link": LINK }),
        )
        .unwrap();
    assert!(r.text.contains("works for 15 minutes"), "{}", r.text);
    assert!(r.text.contains("requested for this address at Acme"));

    let r = t
        .render(
            "staff_signin",
            &json!({ "site": { "name": "Acme" }, "link": LINK }),
        )
        .unwrap();
    assert!(r.text.contains("works for 10 minutes"), "{}", r.text);

    let r = t
        .render(
            "stepup_code",
            &json!({ "site": { "name": "Acme" }, "code": "010203" }),
        )
        .unwrap();
    assert!(r.text.contains("\n010203\n"), "{}", r.text);
    assert!(r.text.contains("your course"));
    assert_eq!(r.subject, "Your Acme security code");
}

#[test]
fn signin_and_staff_mails_carry_link_code_and_expiry() {
    let t = Templates::embedded().unwrap();
    let r = t.render("signin_link", &fixture()).unwrap();
    assert!(r.text.contains(LINK));
    assert!(r.text.contains("\n482913\n"));
    assert!(r.text.contains("works for 15 minutes"));
    assert!(r.text.contains("ignore this email"));

    let mut ctx = fixture();
    ctx["expires_minutes"] = json!(10);
    let r = t.render("staff_signin", &ctx).unwrap();
    assert!(r.text.contains(LINK));
    assert!(r.text.contains("as admin"));
    assert!(r.text.contains("works for 10 minutes"));
    assert!(r.html.contains("Sam &lt;b&gt;Staff&lt;&#x2F;b&gt;"));
}

#[test]
fn missing_required_keys_and_unknown_names_are_errors() {
    let t = Templates::embedded().unwrap();
    let e = t
        .render("learner_link", &json!({ "site": { "name": "Acme" } }))
        .unwrap_err();
    assert!(
        matches!(e, MailError::Template { ref name, .. } if name == "learner_link"),
        "{e}"
    );
    assert!(t.render("nope", &fixture()).is_err());
    assert!(t
        .render("signin_link", &json!(["not", "an", "object"]))
        .is_err());
}

#[test]
fn directory_matches_embedded_and_can_override() {
    let embedded = Templates::embedded().unwrap();
    let from_dir = Templates::load(Some(&repo_email_dir())).unwrap();
    for name in TEMPLATE_NAMES {
        assert_eq!(
            embedded.render(name, &fixture()).unwrap(),
            from_dir.render(name, &fixture()).unwrap()
        );
    }
    // A missing directory falls back to the built-in templates.
    let missing = Templates::load(Some(std::path::Path::new("/nonexistent/email"))).unwrap();
    assert_eq!(missing.names(), embedded.names());

    // An override directory replaces one file and adds a template.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("stepup_code")).unwrap();
    std::fs::write(
        dir.path().join("stepup_code/subject.txt.tera"),
        "Code for {{ site.name }}\n  (custom)",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("course_completed")).unwrap();
    for (part, body) in [
        ("subject.txt.tera", "Well done, {{ learner.name }}"),
        (
            "body.txt.tera",
            "{% extends \"email/base.txt.tera\" %}{% block content %}You finished {{ course.title }}.{% endblock content %}",
        ),
        (
            "body.html.tera",
            "{% extends \"email/base.html.tera\" %}{% block content %}<p>You finished {{ course.title }}.</p>{% endblock content %}",
        ),
    ] {
        std::fs::write(dir.path().join("course_completed").join(part), body).unwrap();
    }
    let t = Templates::load(Some(dir.path())).unwrap();
    assert!(t.names().iter().any(|n| n == "course_completed"));
    let r = t.render("stepup_code", &fixture()).unwrap();
    assert_eq!(r.subject, "Code for Acme Training (custom)");
    let r = t.render("course_completed", &fixture()).unwrap();
    assert!(r.text.starts_with("You finished Data protection & you."));
    assert!(r.html.contains("Data protection &amp; you"));
    assert!(!r.html.contains("<script>"));
}

#[test]
#[ignore]
fn print_preview() {
    let t = Templates::embedded().unwrap();
    for name in TEMPLATE_NAMES {
        let r = t.render(name, &fixture()).unwrap();
        println!(
            "===== {name}\nSubject: {}\n\n{}\n----- html\n{}",
            r.subject, r.text, r.html
        );
    }
}
