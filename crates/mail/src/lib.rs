//! coursegate-mail: email rendering (tera) and delivery (lettre).
//!
//! * [`MailConfig::from_url`] turns the configured SMTP URL (`smtp://`,
//!   `smtp+starttls://`, `smtps://`, optional credentials) into settings; no
//!   URL means the development `.eml` file transport
//!   ([`MailConfig::is_dev_file_transport`]).
//! * [`Templates`] renders `templates/email/<name>/…` (compiled in, optionally
//!   overridden from a directory) into a [`Rendered`] subject, text and HTML.
//! * [`Mailer::send`] delivers one [`OutgoingEmail`] with the caller's stable
//!   Message-ID and reports [`SentInfo`] or a [`MailError`] that says whether
//!   to retry ([`MailError::Transient`]) or give up ([`MailError::Permanent`]).
//!
//! The outbox worker (claiming rows, back-off, dead state) lives with the
//! store; this crate knows nothing of databases or HTTP.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod config;
mod error;
mod mailer;
mod templates;

pub use config::{
    DkimAlgorithm, DkimSettings, MailConfig, SmtpSecurity, SmtpSettings, TransportConfig,
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DEV_MAIL_DIR, DEFAULT_FROM,
};
pub use error::MailError;
pub use mailer::{message_id, Mailer, OutgoingEmail, SentInfo};
pub use templates::{Rendered, Templates, TEMPLATE_NAMES};
