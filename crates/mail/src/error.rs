//! One error type for configuration, rendering and delivery.

/// What went wrong, sorted by what the outbox worker should do about it.
///
/// * [`MailError::Transient`]: try again later (connection refused or reset,
///   timeout, TLS handshake failure, a `4xx` reply, a full disk for the file
///   transport). An outage delays mail; it must not lose it.
/// * [`MailError::Permanent`]: the same message will never be accepted (a `5xx`
///   reply, an address that does not parse, a message that cannot be built).
///   The outbox row goes to its dead state.
/// * [`MailError::Config`] and [`MailError::Template`]: a deployment or template
///   mistake, reported at start-up or when rendering; not a delivery outcome.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MailError {
    /// The mail configuration (URL, sender address, DKIM key, timeouts) is unusable.
    #[error("mail configuration: {0}")]
    Config(String),
    /// A template is missing, does not parse, or failed to render with the given context.
    #[error("email template {name}: {message}")]
    Template {
        /// The template (e.g. `learner_link`).
        name: String,
        /// Tera's message with its cause chain.
        message: String,
    },
    /// Delivery failed for now; retry with back-off.
    #[error("temporary delivery failure{}: {message}", code_suffix(*code))]
    Transient {
        /// The SMTP reply code, when the server gave one (4xx).
        code: Option<u16>,
        /// What happened, without credentials.
        message: String,
    },
    /// Delivery failed for good; do not retry.
    #[error("permanent delivery failure{}: {message}", code_suffix(*code))]
    Permanent {
        /// The SMTP reply code, when the server gave one (5xx).
        code: Option<u16>,
        /// What happened.
        message: String,
    },
}

fn code_suffix(code: Option<u16>) -> String {
    code.map(|c| format!(" ({c})")).unwrap_or_default()
}

impl MailError {
    /// True when a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient { .. })
    }

    /// True when the message will never be delivered as it is.
    pub fn is_permanent(&self) -> bool {
        matches!(self, MailError::Permanent { .. })
    }

    /// The SMTP reply code, if the failure came from a server reply.
    pub fn smtp_code(&self) -> Option<u16> {
        match self {
            MailError::Transient { code, .. } | MailError::Permanent { code, .. } => *code,
            _ => None,
        }
    }

    pub(crate) fn transient(message: impl Into<String>) -> Self {
        MailError::Transient {
            code: None,
            message: message.into(),
        }
    }

    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        MailError::Permanent {
            code: None,
            message: message.into(),
        }
    }
}

/// Flattens an error and its sources into one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let next = s.to_string();
        if !msg.contains(&next) {
            msg.push_str(": ");
            msg.push_str(&next);
        }
        src = s.source();
    }
    msg
}
