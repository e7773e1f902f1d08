//! Delivery: one message at a time, over SMTP or into `.eml` files.

use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::dkim::{DkimConfig, DkimSigningAlgorithm, DkimSigningKey};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{DkimAlgorithm, MailConfig, SmtpSecurity, TransportConfig};
use crate::error::chain;
use crate::{MailError, Rendered};

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Recipient address.
    pub to: String,
    /// Recipient display name, if known.
    pub to_name: Option<String>,
    /// Subject (one line).
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part; without it the message is plain text only.
    pub html: Option<String>,
    /// The `Message-ID`, chosen by the caller and stable per outbox row
    /// (see [`message_id`]) so that a resend after a crash carries the same
    /// id and receiving systems can de-duplicate it.
    pub message_id: String,
}

impl OutgoingEmail {
    /// A message from rendered templates.
    pub fn from_rendered(
        to: impl Into<String>,
        to_name: Option<String>,
        rendered: Rendered,
        message_id: impl Into<String>,
    ) -> OutgoingEmail {
        OutgoingEmail {
            to: to.into(),
            to_name,
            subject: rendered.subject,
            text: rendered.text,
            html: Some(rendered.html),
            message_id: message_id.into(),
        }
    }
}

/// Builds a Message-ID `<local@domain>` from a stable local part (e.g. the
/// outbox row's UUID) and the sender's domain.
pub fn message_id(local: &str, domain: &str) -> String {
    format!("<{local}@{domain}>")
}

/// The outcome of a successful send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentInfo {
    /// The Message-ID the message carried (with angle brackets).
    pub message_id: String,
    /// The relay's final reply (`250 2.0.0 Ok: queued as 4Xk…`), or
    /// `file:<path>` for the file transport. Worth keeping in the audit log.
    pub smtp_response: String,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: PathBuf,
    },
}

/// Sends [`OutgoingEmail`]s. Cheap to clone (shares the connection pool).
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    dkim: Option<DkimConfig>,
    config: MailConfig,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("transport", &self.inner.config.describe())
            .field("from", &self.inner.config.from)
            .field("dkim", &self.inner.dkim.is_some())
            .finish()
    }
}

fn parse_mailbox(what: &str, s: &str) -> Result<Mailbox, MailError> {
    s.parse::<Mailbox>()
        .map_err(|e| MailError::Config(format!("{what} `{s}` is not a valid mailbox: {e}")))
}

fn load_dkim(settings: &crate::DkimSettings) -> Result<DkimConfig, MailError> {
    let pem = std::fs::read_to_string(&settings.key_file).map_err(|e| {
        MailError::Config(format!(
            "DKIM key file {}: {e}",
            settings.key_file.display()
        ))
    })?;
    let algorithm = match settings.algorithm {
        DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
        DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
    };
    let key = DkimSigningKey::new(pem.trim(), algorithm).map_err(|e| {
        MailError::Config(format!(
            "DKIM key file {} is not a usable {:?} key: {e}",
            settings.key_file.display(),
            settings.algorithm
        ))
    })?;
    Ok(DkimConfig::default_config(
        settings.selector.clone(),
        settings.domain.clone(),
        key,
    ))
}

fn tls_parameters(host: &str) -> Result<TlsParameters, MailError> {
    TlsParameters::new(host.to_owned())
        .map_err(|e| MailError::Config(format!("TLS set-up for {host}: {}", chain(&e))))
}

impl Mailer {
    /// Builds the transport. Must run inside a tokio runtime (the SMTP
    /// connection pool starts a background task). Reads the DKIM key now, so a
    /// bad key fails at start rather than at the first send. Does not connect:
    /// see [`Mailer::test_connection`].
    pub fn new(config: &MailConfig) -> Result<Mailer, MailError> {
        let from = parse_mailbox("From address", &config.from)?;
        let reply_to = config
            .reply_to
            .as_deref()
            .map(|r| parse_mailbox("Reply-To address", r))
            .transpose()?;
        let dkim = config.dkim.as_ref().map(load_dkim).transpose()?;

        let transport = match &config.transport {
            TransportConfig::File { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    MailError::Config(format!("mail directory {}: {e}", dir.display()))
                })?;
                Transport::File {
                    transport: AsyncFileTransport::new(dir),
                    dir: dir.clone(),
                }
            }
            TransportConfig::Smtp(s) => {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(MailError::Config(
                        "the SMTP mailer must be created inside a tokio runtime".into(),
                    ));
                }
                let tls = match s.security {
                    SmtpSecurity::None => Tls::None,
                    SmtpSecurity::Opportunistic => Tls::Opportunistic(tls_parameters(&s.host)?),
                    SmtpSecurity::StartTls => Tls::Required(tls_parameters(&s.host)?),
                    SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(&s.host)?),
                };
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
                        .port(s.port)
                        .tls(tls)
                        .timeout(Some(config.connect_timeout))
                        .pool_config(
                            PoolConfig::new()
                                .max_size(4)
                                .idle_timeout(std::time::Duration::from_secs(30)),
                        );
                if let Some(name) = &config.hello_name {
                    builder = builder.hello_name(ClientId::Domain(name.clone()));
                }
                if let Some(user) = &s.username {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        s.password.clone().unwrap_or_default(),
                    ));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Mailer {
            inner: Arc::new(Inner {
                transport,
                from,
                reply_to,
                dkim,
                config: config.clone(),
            }),
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &MailConfig {
        &self.inner.config
    }

    /// True for the development `.eml` file transport.
    pub fn is_dev_file_transport(&self) -> bool {
        self.inner.config.is_dev_file_transport()
    }

    /// Opens a connection and says EHLO (and authenticates), for a health
    /// check or a start-up probe. Always `Ok` for the file transport.
    pub async fn test_connection(&self) -> Result<(), MailError> {
        match &self.inner.transport {
            Transport::File { .. } => Ok(()),
            Transport::Smtp(t) => {
                let probe =
                    tokio::time::timeout(self.inner.config.command_timeout, t.test_connection())
                        .await
                        .map_err(|_| MailError::transient("SMTP relay did not answer in time"))?;
                match probe {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(MailError::transient("SMTP relay refused the session")),
                    Err(e) => Err(classify_smtp(&e)),
                }
            }
        }
    }

    /// Builds the MIME message (signing it when DKIM is set) without sending it.
    pub fn build_message(&self, email: &OutgoingEmail) -> Result<Message, MailError> {
        let inner = &self.inner;
        let address = email
            .to
            .trim()
            .parse::<lettre::Address>()
            .map_err(|e| MailError::permanent(format!("recipient address is invalid: {e}")))?;
        let name = email
            .to_name
            .as_deref()
            .map(one_line)
            .filter(|n| !n.is_empty());
        let to = Mailbox::new(name, address);
        let message_id = normalise_message_id(&email.message_id)?;

        let mut builder = Message::builder()
            .from(inner.from.clone())
            .to(to)
            .subject(one_line(&email.subject))
            .message_id(Some(message_id));
        if let Some(r) = &inner.reply_to {
            builder = builder.reply_to(r.clone());
        }
        let built = match &email.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(SinglePart::plain(email.text.clone())),
        };
        let mut message =
            built.map_err(|e| MailError::permanent(format!("message cannot be built: {e}")))?;
        // RFC 3834: keeps out-of-office responders from answering a sign-in mail.
        message.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ));
        if let Some(dkim) = &inner.dkim {
            message.sign(dkim);
        }
        Ok(message)
    }

    /// Sends one message. On success the relay has accepted responsibility for
    /// it. Errors say whether to retry ([`MailError::Transient`]) or give up
    /// ([`MailError::Permanent`]).
    pub async fn send(&self, email: &OutgoingEmail) -> Result<SentInfo, MailError> {
        let message = self.build_message(email)?;
        let message_id = normalise_message_id(&email.message_id)?;
        match &self.inner.transport {
            Transport::Smtp(t) => {
                let outcome =
                    tokio::time::timeout(self.inner.config.command_timeout, t.send(message))
                        .await
                        .map_err(|_| {
                            MailError::transient(format!(
                                "SMTP transaction timed out after {} s",
                                self.inner.config.command_timeout.as_secs()
                            ))
                        })?;
                match outcome {
                    Ok(resp) => {
                        let lines: Vec<&str> = resp.message().collect();
                        let smtp_response = format!("{} {}", resp.code(), lines.join(" "))
                            .trim()
                            .to_owned();
                        tracing::debug!(%message_id, %smtp_response, "mail accepted by relay");
                        Ok(SentInfo {
                            message_id,
                            smtp_response,
                        })
                    }
                    Err(e) => Err(classify_smtp(&e)),
                }
            }
            Transport::File { transport, dir } => {
                let id = transport
                    .send(message)
                    .await
                    .map_err(|e| MailError::transient(format!("writing .eml: {}", chain(&e))))?;
                let path = dir.join(format!("{id}.eml"));
                tracing::info!(
                    path = %path.display(),
                    %message_id,
                    "development mail transport: message written to a file, not sent"
                );
                Ok(SentInfo {
                    message_id,
                    smtp_response: format!("file:{}", path.display()),
                })
            }
        }
    }
}

/// Maps lettre's SMTP error onto retry / give up.
fn classify_smtp(e: &lettre::transport::smtp::Error) -> MailError {
    let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
    let message = chain(e);
    if e.is_permanent() {
        MailError::Permanent { code, message }
    } else {
        // 4xx, refused or reset connections, timeouts, TLS failures, garbled
        // replies: the relay may be fine later, so keep the message.
        MailError::Transient { code, message }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn normalise_message_id(id: &str) -> Result<String, MailError> {
    let bare = id.trim().trim_start_matches('<').trim_end_matches('>');
    let valid = bare.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty()
            && !d.is_empty()
            && bare
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'))
    });
    if valid {
        Ok(format!("<{bare}>"))
    } else {
        Err(MailError::permanent(format!(
            "Message-ID `{id}` is not of the form <local@domain>"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids() {
        assert_eq!(
            normalise_message_id("abc@example.com").unwrap(),
            "<abc@example.com>"
        );
        assert_eq!(normalise_message_id(" <a.b@c> ").unwrap(), "<a.b@c>");
        assert!(normalise_message_id("no-at-sign").is_err());
        assert!(normalise_message_id("<a b@c>").is_err());
        assert_eq!(message_id("u-1", "mail.example"), "<u-1@mail.example>");
    }

    #[test]
    fn one_line_subjects() {
        assert_eq!(one_line("  Hello\r\n  world\t!"), "Hello world !");
    }
}
