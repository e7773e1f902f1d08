//! Real SMTP conversations over loopback TCP between the mailer (lettre) and
//! the testkit's SMTP sink.

use std::time::Duration;

use base64::Engine as _;
use coursegate_mail::{
    message_id, DkimAlgorithm, DkimSettings, MailConfig, MailError, Mailer, OutgoingEmail,
    Templates,
};
use coursegate_testkit::smtp::SmtpSink;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn config(url: &str) -> MailConfig {
    MailConfig::from_url(Some(url))
        .unwrap()
        .with_from("Acme Training <learn@acme.example>")
        .with_reply_to("help@acme.example")
        .with_hello_name("coursegate.test")
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(5))
}

fn welcome(to: &str, id: &str) -> OutgoingEmail {
    let rendered = Templates::embedded()
        .unwrap()
        .render(
            "learner_link",
            &json!({
                "site": { "name": "Acme Training", "support_email": "help@acme.example" },
                "learner": { "name": "Zoë <script>x</script> Müller", "email": to },
                "course": { "title": "Fire safety – the basics" },
                "link": "http://127.0.0.1:8080/l/lsn1_AbCdEf0123456789-_xyz",
                "code": "482913",
                "reference": "order 1234",
                "expires_at": "31 December 2026",
                "signin_url": "http://127.0.0.1:8080/signin"
            }),
        )
        .unwrap();
    OutgoingEmail::from_rendered(
        to,
        Some("Zoë Müller".into()),
        rendered,
        message_id(id, "acme.example"),
    )
}

#[tokio::test]
async fn delivers_and_reads_back_subject_body_link_code_and_message_id() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&config(&sink.url())).unwrap();
    assert!(!mailer.is_dev_file_transport());
    mailer.test_connection().await.unwrap();

    let email = welcome("zoe@example.com", "0190-outbox-1");
    let sent = mailer.send(&email).await.unwrap();
    assert_eq!(sent.message_id, "<0190-outbox-1@acme.example>");
    assert!(
        sent.smtp_response.starts_with("250 "),
        "{}",
        sent.smtp_response
    );
    assert!(
        sent.smtp_response.contains("queued as"),
        "{}",
        sent.smtp_response
    );

    let mails = sink.wait_for(1, WAIT).await.unwrap();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.from, "learn@acme.example");
    assert_eq!(m.to, vec!["zoe@example.com".to_string()]);
    assert_eq!(
        m.message_id().as_deref(),
        Some("<0190-outbox-1@acme.example>")
    );
    assert_eq!(
        m.subject().as_deref(),
        Some("Your access to Fire safety – the basics from Acme Training")
    );
    assert_eq!(
        m.header("auto-submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(m.header("List-Unsubscribe").is_none());
    assert!(m.header("Date").is_some());
    assert!(m.header("Reply-To").unwrap().contains("help@acme.example"));
    assert!(m.header("To").unwrap().contains("zoe@example.com"));

    let text = m.text_body().unwrap();
    assert!(
        text.contains("Hello Zoë <script>x</script> Müller,"),
        "{text}"
    );
    assert!(text.contains("following your order 1234"), "{text}");
    let html = m.html_body().unwrap();
    assert!(html.contains("Zoë &lt;script&gt;x"), "{html}");
    assert!(!html.contains("<script>"));

    assert_eq!(
        m.find_link("http://127.0.0.1:8080/l/").as_deref(),
        Some("http://127.0.0.1:8080/l/lsn1_AbCdEf0123456789-_xyz")
    );
    assert_eq!(m.find_code().as_deref(), Some("482913"));
}

#[tokio::test]
async fn outage_is_transient_and_the_resend_keeps_its_message_id() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&config(&sink.url())).unwrap();

    // A first message leaves a pooled connection behind; the outage must reach it too.
    mailer
        .send(&welcome("first@example.com", "m-1"))
        .await
        .unwrap();

    sink.set_down(true);
    let email = welcome("zoe@example.com", "m-2");
    let err = mailer.send(&email).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.smtp_code(), Some(421), "{err:?}");
    // Still down: still transient, nothing accepted.
    assert!(mailer.send(&email).await.unwrap_err().is_transient());
    assert_eq!(sink.messages().len(), 1);

    sink.set_down(false);
    let sent = mailer.send(&email).await.unwrap();
    assert_eq!(sent.message_id, "<m-2@acme.example>");
    let mails = sink.wait_for(2, WAIT).await.unwrap();
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].message_id().as_deref(), Some("<m-2@acme.example>"));
    assert_eq!(sink.messages_to("zoe@example.com").len(), 1);
}

#[tokio::test]
async fn an_outage_delays_but_loses_nothing() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&config(&sink.url())).unwrap();
    sink.set_down(true);

    let mut pending: Vec<OutgoingEmail> = (0..5)
        .map(|i| welcome(&format!("learner{i}@example.com"), &format!("row-{i}")))
        .collect();
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        assert!(rounds < 10, "never drained");
        if rounds == 3 {
            sink.set_down(false);
        }
        let mut still = Vec::new();
        for email in pending {
            match mailer.send(&email).await {
                Ok(_) => {}
                Err(e) if e.is_transient() => still.push(email),
                Err(e) => panic!("lost {}: {e}", email.to),
            }
        }
        pending = still;
    }
    let mails = sink.wait_for(5, WAIT).await.unwrap();
    assert_eq!(mails.len(), 5);
    for i in 0..5 {
        let got = sink.messages_to(&format!("learner{i}@example.com"));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message_id(), Some(format!("<row-{i}@acme.example>")));
    }
}

#[tokio::test]
async fn rejected_recipient_is_permanent_and_4xx_is_transient() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&config(&sink.url())).unwrap();

    sink.reject_rcpt_permanently("gone@example.com");
    let err = mailer
        .send(&welcome("Gone@Example.com", "p-1"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.smtp_code(), Some(550));
    assert!(err.to_string().contains("550"), "{err}");

    sink.reject_rcpt_temporarily("busy@example.com");
    let err = mailer
        .send(&welcome("busy@example.com", "t-1"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.smtp_code(), Some(450));

    // Other recipients still go through on the same mailer.
    mailer
        .send(&welcome("fine@example.com", "ok-1"))
        .await
        .unwrap();
    assert_eq!(sink.wait_for(1, WAIT).await.unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_addresses_are_permanent() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&config(&sink.url())).unwrap();
    let err = mailer
        .send(&welcome("not an address", "bad-1"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    let mut email = welcome("ok@example.com", "x");
    email.message_id = "no brackets or at".into();
    assert!(mailer.send(&email).await.unwrap_err().is_permanent());
    assert_eq!(sink.sessions_opened(), 0, "nothing was sent");
}

#[tokio::test]
async fn refused_connection_and_silent_server_are_transient() {
    // Nothing listens on this port any more.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let mailer = Mailer::new(&config(&format!("smtp://127.0.0.1:{port}"))).unwrap();
    let err = mailer
        .send(&welcome("a@example.com", "r-1"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(mailer.test_connection().await.unwrap_err().is_transient());

    // A server that accepts and never greets: the command timeout fires.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let cfg = config(&format!("smtp://{addr}"))
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(700));
    let mailer = Mailer::new(&cfg).unwrap();
    let started = std::time::Instant::now();
    let err = mailer
        .send(&welcome("a@example.com", "s-1"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn authenticates_with_url_credentials() {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://mailer%40acme.example:s3cr%3At@{}", sink.addr());
    let mailer = Mailer::new(&config(&url)).unwrap();
    assert!(!format!("{mailer:?}").contains("s3cr"));
    mailer
        .send(&welcome("a@example.com", "auth-1"))
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT).await.unwrap();
    assert_eq!(mails[0].auth_user.as_deref(), Some("mailer@acme.example"));
}

#[tokio::test]
async fn signs_with_dkim_when_configured() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.key");
    std::fs::write(
        &key_file,
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    )
    .unwrap();
    let cfg = config(&sink.url()).with_dkim(DkimSettings {
        selector: "cg2026".into(),
        domain: "acme.example".into(),
        key_file: key_file.clone(),
        algorithm: DkimAlgorithm::Ed25519,
    });
    let mailer = Mailer::new(&cfg).unwrap();
    mailer
        .send(&welcome("a@example.com", "dkim-1"))
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT).await.unwrap();
    let sig = mails[0].header("DKIM-Signature").expect("signed");
    assert!(sig.contains("a=ed25519-sha256"), "{sig}");
    assert!(sig.contains("d=acme.example"), "{sig}");
    assert!(sig.contains("s=cg2026"), "{sig}");

    // A key that does not parse fails at start, not at the first send.
    std::fs::write(&key_file, "-----BEGIN RSA PRIVATE KEY-----\nnope\n").unwrap();
    let bad = config(&sink.url()).with_dkim(DkimSettings {
        selector: "s".into(),
        domain: "acme.example".into(),
        key_file,
        algorithm: DkimAlgorithm::Rsa,
    });
    assert!(matches!(Mailer::new(&bad), Err(MailError::Config(_))));
}

#[tokio::test]
async fn dev_file_transport_writes_eml_files() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mail");
    let cfg = MailConfig::from_url(None)
        .unwrap()
        .with_file_dir(&target)
        .with_from("learn@acme.example");
    assert!(cfg.is_dev_file_transport());
    let mailer = Mailer::new(&cfg).unwrap();
    assert!(mailer.is_dev_file_transport());
    let sent = mailer
        .send(&welcome("a@example.com", "file-1"))
        .await
        .unwrap();
    let path = sent.smtp_response.strip_prefix("file:").unwrap();
    assert!(path.ends_with(".eml"), "{path}");
    let raw = std::fs::read_to_string(path).unwrap();
    assert!(raw.contains("Message-ID: <file-1@acme.example>"), "{raw}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
}

#[test]
fn bad_from_address_is_a_config_error() {
    let cfg = MailConfig::file("/tmp/unused-cg-mail").with_from("not an address");
    assert!(matches!(Mailer::new(&cfg), Err(MailError::Config(_))));
}

#[tokio::test]
async fn plain_text_only_with_leading_dots_survives_the_trip() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&config(&sink.url())).unwrap();
    let text = ".leading dot\n..two dots\n.\nend\n";
    let email = OutgoingEmail {
        to: "a@example.com".into(),
        to_name: None,
        subject: "Multi\r\nline\tsubject".into(),
        text: text.into(),
        html: None,
        message_id: "plain-1@acme.example".into(),
    };
    let sent = mailer.send(&email).await.unwrap();
    assert_eq!(sent.message_id, "<plain-1@acme.example>");
    let m = &sink.wait_for(1, WAIT).await.unwrap()[0];
    assert_eq!(m.subject().as_deref(), Some("Multi line subject"));
    // Transports may add line ends at the end; every dotted line survives.
    assert_eq!(
        m.text_body().unwrap().replace("\r\n", "\n").trim_end(),
        text.trim_end()
    );
    assert!(m.html_body().is_none());
}
