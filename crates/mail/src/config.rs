//! Mail configuration: where mail goes, who it comes from, how long to wait.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::MailError;

/// Default directory of the development file transport.
pub const DEFAULT_DEV_MAIL_DIR: &str = "data/mail";
/// Default sender when none is configured.
pub const DEFAULT_FROM: &str = "Coursegate <noreply@localhost>";
/// Default limit for opening a connection (TCP connect plus implicit TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for one whole SMTP transaction (greeting to final reply).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text, no TLS: for a relay on loopback or a trusted local network
    /// (`smtp://host:port`, `?tls=none`).
    None,
    /// STARTTLS if the server offers it, plain otherwise (`?tls=opportunistic`).
    /// Open to downgrade; not for the internet.
    Opportunistic,
    /// STARTTLS required; nothing is sent if the upgrade fails
    /// (`smtp+starttls://`, `?tls=starttls`, `?tls=required`).
    StartTls,
    /// Implicit TLS from the first byte (`smtps://`, usually port 465).
    Tls,
}

impl SmtpSecurity {
    /// A short word for logs: `none`, `opportunistic`, `starttls`, `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::None => "none",
            SmtpSecurity::Opportunistic => "opportunistic",
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::Tls => "tls",
        }
    }
}

/// An SMTP relay.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Host name (also the name the TLS certificate must carry).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// User name for AUTH (percent-decoded from the URL).
    pub username: Option<String>,
    /// Password for AUTH (percent-decoded from the URL). Never printed.
    pub password: Option<String>,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// A real SMTP relay.
    Smtp(SmtpSettings),
    /// Development only: each message is written as `<uuid>.eml` under `dir`.
    File {
        /// The directory (created if missing).
        dir: PathBuf,
    },
}

/// DKIM signing algorithm of the key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// RSA; the key file holds a PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`).
    Rsa,
    /// Ed25519; the key file holds the base64 of the 32-byte secret key.
    Ed25519,
}

/// Optional DKIM signing, done before the message leaves the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSettings {
    /// The DNS selector (`<selector>._domainkey.<domain>`).
    pub selector: String,
    /// The signing domain (`d=`), normally the sender's domain.
    pub domain: String,
    /// Path of the private key file.
    pub key_file: PathBuf,
    /// Algorithm of the key.
    pub algorithm: DkimAlgorithm,
}

/// Everything the [`crate::Mailer`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// SMTP or the development file transport.
    pub transport: TransportConfig,
    /// The `From` mailbox, e.g. `Acme Training <learn@acme.example>`.
    pub from: String,
    /// An optional `Reply-To` mailbox (e.g. the support desk).
    pub reply_to: Option<String>,
    /// Limit for connecting (and the TLS handshake for `smtps`).
    pub connect_timeout: Duration,
    /// Limit for a whole send, from connection to the final reply.
    pub command_timeout: Duration,
    /// The name sent in EHLO; the machine's host name when unset.
    pub hello_name: Option<String>,
    /// DKIM signing, if configured.
    pub dkim: Option<DkimSettings>,
}

impl MailConfig {
    /// Parses the SMTP URL from the configuration; `None` selects the
    /// development file transport under [`DEFAULT_DEV_MAIL_DIR`].
    ///
    /// Accepted forms (user and password are optional and percent-decoded):
    ///
    /// | URL | security | default port |
    /// |---|---|---|
    /// | `smtp://[user:pass@]host[:port]` | none (loopback or trusted relay) | 25 |
    /// | `smtp://host:587?tls=starttls` (or `tls=required`) | STARTTLS required | 25 |
    /// | `smtp://host?tls=opportunistic` | STARTTLS when offered | 25 |
    /// | `smtp+starttls://[user:pass@]host[:port]` | STARTTLS required | 587 |
    /// | `smtps://[user:pass@]host[:port]` | implicit TLS | 465 |
    pub fn from_url(url: Option<&str>) -> Result<MailConfig, MailError> {
        let transport = match url.map(str::trim).filter(|u| !u.is_empty()) {
            None => TransportConfig::File {
                dir: PathBuf::from(DEFAULT_DEV_MAIL_DIR),
            },
            Some(u) => TransportConfig::Smtp(parse_smtp_url(u)?),
        };
        Ok(MailConfig {
            transport,
            from: DEFAULT_FROM.to_owned(),
            reply_to: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            hello_name: None,
            dkim: None,
        })
    }

    /// A file transport writing under `dir` (development and tests).
    pub fn file(dir: impl Into<PathBuf>) -> MailConfig {
        MailConfig {
            transport: TransportConfig::File { dir: dir.into() },
            from: DEFAULT_FROM.to_owned(),
            reply_to: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            hello_name: None,
            dkim: None,
        }
    }

    /// Sets the `From` mailbox (`addr@example.com` or `Name <addr@example.com>`).
    pub fn with_from(mut self, from: impl Into<String>) -> Self {
        self.from = from.into();
        self
    }

    /// Sets a `Reply-To` mailbox.
    pub fn with_reply_to(mut self, reply_to: impl Into<String>) -> Self {
        self.reply_to = Some(reply_to.into());
        self
    }

    /// Moves the development file transport to `dir`; no effect on SMTP.
    pub fn with_file_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        if let TransportConfig::File { dir: d } = &mut self.transport {
            *d = dir.into();
        }
        self
    }

    /// Sets the connect and whole-send limits.
    pub fn with_timeouts(mut self, connect: Duration, command: Duration) -> Self {
        self.connect_timeout = connect;
        self.command_timeout = command;
        self
    }

    /// Sets the EHLO name.
    pub fn with_hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// Turns on DKIM signing.
    pub fn with_dkim(mut self, dkim: DkimSettings) -> Self {
        self.dkim = Some(dkim);
        self
    }

    /// True for the `.eml` file transport: development only, mail never leaves
    /// the machine. The server should say so loudly at start.
    pub fn is_dev_file_transport(&self) -> bool {
        matches!(self.transport, TransportConfig::File { .. })
    }

    /// The file transport's directory, if that is the transport.
    pub fn file_dir(&self) -> Option<&Path> {
        match &self.transport {
            TransportConfig::File { dir } => Some(dir),
            TransportConfig::Smtp(_) => None,
        }
    }

    /// Where mail goes, for logs: `smtp://user@host:port (starttls)` or
    /// `file:data/mail`; never the password.
    pub fn describe(&self) -> String {
        match &self.transport {
            TransportConfig::File { dir } => format!("file:{}", dir.display()),
            TransportConfig::Smtp(s) => {
                let user = s
                    .username
                    .as_deref()
                    .map(|u| format!("{u}@"))
                    .unwrap_or_default();
                format!(
                    "smtp://{user}{}:{} ({})",
                    s.host,
                    s.port,
                    s.security.as_str()
                )
            }
        }
    }
}

fn parse_smtp_url(raw: &str) -> Result<SmtpSettings, MailError> {
    // Never echo the URL itself: it may carry a password.
    let url = url::Url::parse(raw).map_err(|e| {
        MailError::Config(format!(
            "SMTP URL does not parse ({e}); expected smtp://HOST:PORT, smtp+starttls://USER:PASS@HOST:587 or smtps://USER:PASS@HOST:465"
        ))
    })?;
    let (mut security, default_port) = match url.scheme() {
        "smtp" => (SmtpSecurity::None, 25),
        "smtp+starttls" => (SmtpSecurity::StartTls, 587),
        "smtps" => (SmtpSecurity::Tls, 465),
        other => {
            return Err(MailError::Config(format!(
                "SMTP URL scheme `{other}` is not supported; use smtp, smtp+starttls or smtps"
            )))
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| MailError::Config("SMTP URL has no host".into()))?;
    // IPv6 literals come back bracketed; the socket address wants them bare.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    let port = url.port().unwrap_or(default_port);

    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "tls" => {
                let wanted = match value.as_ref() {
                    "starttls" | "required" => SmtpSecurity::StartTls,
                    "opportunistic" => SmtpSecurity::Opportunistic,
                    "none" | "off" | "plain" => SmtpSecurity::None,
                    "tls" | "implicit" | "wrapper" => SmtpSecurity::Tls,
                    other => {
                        return Err(MailError::Config(format!(
                            "SMTP URL: tls={other} is not one of starttls, required, opportunistic, none, tls"
                        )))
                    }
                };
                if url.scheme() != "smtp" && wanted != security {
                    return Err(MailError::Config(format!(
                        "SMTP URL: scheme {} contradicts tls={value}",
                        url.scheme()
                    )));
                }
                security = wanted;
            }
            other => {
                return Err(MailError::Config(format!(
                    "SMTP URL: unknown parameter `{other}` (only `tls` is understood)"
                )))
            }
        }
    }

    let username = match url.username() {
        "" => None,
        u => Some(percent_decode(u)?),
    };
    let password = url.password().map(percent_decode).transpose()?;
    if password.is_some() && username.is_none() {
        return Err(MailError::Config(
            "SMTP URL has a password but no user name".into(),
        ));
    }
    Ok(SmtpSettings {
        host,
        port,
        security,
        username,
        password,
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(s: &str) -> Result<String, MailError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex);
                let lo = bytes.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                    }
                    _ => {
                        return Err(MailError::Config(
                            "SMTP URL credentials: bad percent-encoding".into(),
                        ))
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| MailError::Config("SMTP URL credentials are not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(u: &str) -> SmtpSettings {
        match MailConfig::from_url(Some(u)).unwrap().transport {
            TransportConfig::Smtp(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn none_is_dev_file_transport() {
        let c = MailConfig::from_url(None).unwrap();
        assert!(c.is_dev_file_transport());
        assert_eq!(c.file_dir(), Some(Path::new("data/mail")));
        assert!(MailConfig::from_url(Some("  "))
            .unwrap()
            .is_dev_file_transport());
        let c = c.with_file_dir("/tmp/x");
        assert_eq!(c.describe(), "file:/tmp/x");
    }

    #[test]
    fn plain_smtp() {
        let s = smtp("smtp://127.0.0.1:2525");
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.port, 2525);
        assert_eq!(s.security, SmtpSecurity::None);
        assert_eq!(s.username, None);
        assert_eq!(smtp("smtp://mail.local").port, 25);
    }

    #[test]
    fn starttls_and_smtps_with_auth() {
        let s = smtp("smtp+starttls://ap%40acme.example:p%3Ass%2Fw@smtp.acme.example");
        assert_eq!(s.security, SmtpSecurity::StartTls);
        assert_eq!(s.port, 587);
        assert_eq!(s.username.as_deref(), Some("ap@acme.example"));
        assert_eq!(s.password.as_deref(), Some("p:ss/w"));

        let s = smtp("smtp://u:p@relay:587?tls=starttls");
        assert_eq!(s.security, SmtpSecurity::StartTls);
        assert_eq!(
            smtp("smtp://relay?tls=required").security,
            SmtpSecurity::StartTls
        );
        assert_eq!(
            smtp("smtp://relay?tls=opportunistic").security,
            SmtpSecurity::Opportunistic
        );

        let s = smtp("smtps://u:p@smtp.example.com");
        assert_eq!(s.security, SmtpSecurity::Tls);
        assert_eq!(s.port, 465);
        assert_eq!(smtp("smtp://[::1]:25").host, "::1");
    }

    #[test]
    fn rejects_bad_urls_without_echoing_secrets() {
        for bad in [
            "http://mail",
            "smtp://",
            "smtp://relay?tls=maybe",
            "smtp://relay?timeout=3",
            "smtps://relay?tls=starttls",
            "smtp://u:p%zz@relay",
            "not a url secret123",
        ] {
            let e = MailConfig::from_url(Some(bad)).unwrap_err();
            assert!(matches!(e, MailError::Config(_)), "{bad}: {e:?}");
            assert!(!e.to_string().contains("secret123"), "{e}");
        }
    }

    #[test]
    fn debug_and_describe_hide_password() {
        let c = MailConfig::from_url(Some("smtps://user:hunter2@smtp.example.com"))
            .unwrap()
            .with_from("Acme <learn@acme.example>");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.describe(), "smtp://user@smtp.example.com:465 (tls)");
        assert!(!c.is_dev_file_transport());
    }
}
