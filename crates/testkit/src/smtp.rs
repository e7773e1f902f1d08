//! A real SMTP server on loopback for tests.
//!
//! [`SmtpSink`] listens on `127.0.0.1:0`, speaks enough SMTP for lettre (and
//! any other client) to deliver to it over TCP, and keeps every accepted
//! message in memory. Tests read delivered mail back through
//! [`ReceivedMail`]'s helpers (subject, decoded text and HTML bodies, a link
//! by prefix, the 6-digit code).
//!
//! Failure switches let tests exercise the delivery worker:
//! [`SmtpSink::set_down`] answers `421` at the greeting (and to any command of
//! an open session), as a relay under maintenance does;
//! [`SmtpSink::reject_rcpt_permanently`] answers `550` for one recipient;
//! [`SmtpSink::reject_rcpt_temporarily`] answers `450`.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use coursegate_testkit::smtp::SmtpSink;
//!
//! let sink = SmtpSink::start().await;
//! // point the mailer at sink.url() and send something ...
//! let mails = sink.wait_for(1, Duration::from_secs(5)).await.unwrap();
//! let link = mails[0].find_link("http://127.0.0.1");
//! # }
//! ```
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use mail_parser::{MessageParser, PartType};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Longest command or data line accepted (RFC 5321 allows 1000 octets; be generous).
const MAX_LINE: u64 = 64 * 1024;
/// Largest message accepted, to keep a misbehaving client from eating memory.
const MAX_MESSAGE: usize = 32 * 1024 * 1024;
/// Idle limit per read, so a stuck client does not keep a task forever.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One message the sink accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), without angle brackets; empty for a null sender.
    pub from: String,
    /// The accepted envelope recipients (`RCPT TO`), without angle brackets.
    pub to: Vec<String>,
    /// The message as received, after dot-unstuffing, lines ending in CRLF.
    pub raw: String,
    /// The user name the client authenticated as (AUTH PLAIN/LOGIN), if it did.
    pub auth_user: Option<String>,
}

impl fmt::Debug for ReceivedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedMail")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("subject", &self.subject())
            .field("bytes", &self.raw.len())
            .finish()
    }
}

impl ReceivedMail {
    fn parsed(&self) -> Option<mail_parser::Message<'_>> {
        MessageParser::default().parse(self.raw.as_bytes())
    }

    /// The decoded `Subject` header.
    pub fn subject(&self) -> Option<String> {
        self.parsed()?.subject().map(str::to_owned)
    }

    /// The first `text/plain` part, transfer-decoded (quoted-printable, base64) and charset-decoded.
    pub fn text_body(&self) -> Option<String> {
        let msg = self.parsed()?;
        msg.parts.iter().find_map(|p| match &p.body {
            PartType::Text(t) => Some(t.to_string()),
            _ => None,
        })
    }

    /// The first `text/html` part, decoded.
    pub fn html_body(&self) -> Option<String> {
        let msg = self.parsed()?;
        msg.parts.iter().find_map(|p| match &p.body {
            PartType::Html(t) => Some(t.to_string()),
            _ => None,
        })
    }

    /// A top-level header's value as sent (unfolded, trimmed, not RFC 2047-decoded).
    /// The name is case-insensitive.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self
            .raw
            .split_once("\r\n\r\n")
            .map_or(self.raw.as_str(), |(h, _)| h);
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = value.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.trim().eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_owned());
                }
            }
        }
        value
    }

    /// The `Message-ID` header as sent, with its angle brackets.
    pub fn message_id(&self) -> Option<String> {
        self.header("Message-ID")
    }

    /// The first URL starting with `prefix`, looked for in the text part, then the
    /// HTML part (character references decoded), then the raw message. Trailing sentence
    /// punctuation is not part of the link.
    pub fn find_link(&self, prefix: &str) -> Option<String> {
        if prefix.is_empty() {
            return None;
        }
        if let Some(link) = self.text_body().and_then(|t| scan_link(&t, prefix)) {
            return Some(link);
        }
        if let Some(link) = self
            .html_body()
            .and_then(|h| scan_link(&decode_entities(&h), prefix))
        {
            return Some(link);
        }
        scan_link(&self.raw, prefix)
    }

    /// The 6-digit code in the text part (or the HTML part if there is no text part):
    /// a line that is just six digits wins, then six digits on a line that mentions
    /// "code", then the first six digits standing alone.
    pub fn find_code(&self) -> Option<String> {
        let body = self.text_body().or_else(|| self.html_body())?;
        find_code_in(&body)
    }
}

fn scan_link(haystack: &str, prefix: &str) -> Option<String> {
    let start = haystack.find(prefix)?;
    let rest = &haystack[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ')' | ']'))
        .unwrap_or(rest.len());
    let link = rest[..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
    Some(link.to_owned())
}

/// Decodes HTML character references (`&amp;`, `&#x2F;`, `&#47;` ...).
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let num = name.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn six_digit_runs(line: &str) -> impl Iterator<Item = &str> {
    let bytes = line.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
                let after_ok = i == bytes.len() || !bytes[i].is_ascii_alphanumeric();
                if i - start == 6 && before_ok && after_ok {
                    return line.get(start..i);
                }
            } else {
                i += 1;
            }
        }
        None
    })
}

fn find_code_in(body: &str) -> Option<String> {
    if let Some(line) = body
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(line.to_owned());
    }
    if let Some(code) = body
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("code"))
        .find_map(|l| six_digit_runs(l).next())
    {
        return Some(code.to_owned());
    }
    body.lines()
        .find_map(|l| six_digit_runs(l).next())
        .map(str::to_owned)
}

/// [`SmtpSink::wait_for`] gave up before enough messages arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTimeout {
    /// How many messages were wanted.
    pub wanted: usize,
    /// The messages received by the deadline.
    pub got: Vec<ReceivedMail>,
}

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SMTP sink: waited for {} message(s), got {}",
            self.wanted,
            self.got.len()
        )
    }
}

impl std::error::Error for WaitTimeout {}

#[derive(Default)]
struct Rules {
    reject_permanently: HashSet<String>,
    reject_temporarily: HashSet<String>,
}

struct Shared {
    messages: Mutex<Vec<ReceivedMail>>,
    count: watch::Sender<usize>,
    down: AtomicBool,
    rules: Mutex<Rules>,
    sessions: AtomicU64,
    queued: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    fn push(&self, mail: ReceivedMail) -> u64 {
        let n = {
            let mut msgs = lock(&self.messages);
            msgs.push(mail);
            msgs.len()
        };
        self.count.send_replace(n);
        self.queued.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// An SMTP server on `127.0.0.1` that keeps what it receives. Stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .field("down", &self.shared.is_down())
            .field("messages", &lock(&self.shared.messages).len())
            .finish()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// Starts a sink on a free loopback port.
    ///
    /// # Panics
    /// If no loopback port can be bound: a test cannot go on without its mail server.
    #[allow(clippy::panic)]
    pub async fn start() -> SmtpSink {
        match Self::try_start().await {
            Ok(sink) => sink,
            Err(e) => panic!("SMTP sink: cannot listen on 127.0.0.1: {e}"),
        }
    }

    /// Starts a sink on a free loopback port, reporting a bind failure.
    pub async fn try_start() -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (count, _) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            messages: Mutex::new(Vec::new()),
            count,
            down: AtomicBool::new(false),
            rules: Mutex::new(Rules::default()),
            sessions: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _peer)) = listener.accept().await else {
                    // Transient accept failures (e.g. out of descriptors): back off briefly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = Arc::clone(&accept_shared);
                tokio::spawn(async move {
                    if let Err(e) = session(stream, shared).await {
                        tracing::debug!(error = %e, "smtp sink session ended with an error");
                    }
                });
            }
        });
        Ok(SmtpSink { addr, shared, task })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP, no TLS, no authentication.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.messages).clone()
    }

    /// Messages delivered to `addr` (case-insensitive), oldest first.
    pub fn messages_to(&self, addr: &str) -> Vec<ReceivedMail> {
        lock(&self.shared.messages)
            .iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(addr)))
            .cloned()
            .collect()
    }

    /// The most recent message, if any.
    pub fn last(&self) -> Option<ReceivedMail> {
        lock(&self.shared.messages).last().cloned()
    }

    /// Forgets every message received so far.
    pub fn clear(&self) {
        lock(&self.shared.messages).clear();
        self.shared.count.send_replace(0);
    }

    /// How many SMTP sessions (TCP connections) were opened, including refused ones.
    pub fn sessions_opened(&self) -> u64 {
        self.shared.sessions.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages have arrived, then returns all of them.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMail>, WaitTimeout> {
        let mut rx = self.shared.count.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await;
        let msgs = self.messages();
        match reached {
            Ok(Ok(_)) => Ok(msgs),
            _ => Err(WaitTimeout {
                wanted: n,
                got: msgs,
            }),
        }
    }

    /// Outage switch. While down, a new connection is greeted with `421` and
    /// closed, and an open session answers its next command with `421` and is
    /// closed. Messages already accepted are kept.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Whether the outage switch is on.
    pub fn is_down(&self) -> bool {
        self.shared.is_down()
    }

    /// Answers `550 5.1.1` to `RCPT TO` for this address (case-insensitive).
    pub fn reject_rcpt_permanently(&self, addr: &str) {
        lock(&self.shared.rules)
            .reject_permanently
            .insert(addr.to_ascii_lowercase());
    }

    /// Answers `450 4.2.1` to `RCPT TO` for this address (case-insensitive) until cleared.
    pub fn reject_rcpt_temporarily(&self, addr: &str) {
        lock(&self.shared.rules)
            .reject_temporarily
            .insert(addr.to_ascii_lowercase());
    }

    /// Removes every recipient rejection.
    pub fn clear_rejections(&self) {
        let mut rules = lock(&self.shared.rules);
        rules.reject_permanently.clear();
        rules.reject_temporarily.clear();
    }
}

/// Reads one line (up to LF) into `buf`; `Ok(false)` at end of stream.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    buf.clear();
    let mut limited = reader.take(MAX_LINE);
    let n = tokio::time::timeout(READ_TIMEOUT, limited.read_until(b'\n', buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client idle"))??;
    Ok(n > 0)
}

async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

/// The address inside `<...>` after `FROM:`/`TO:`, or the first word if unbracketed.
fn path_arg(arg: &str) -> Option<String> {
    let arg = arg.trim();
    if let Some(rest) = arg.strip_prefix('<') {
        let end = rest.find('>')?;
        return Some(rest[..end].to_owned());
    }
    arg.split_whitespace().next().map(str::to_owned)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

const SERVICE_NOT_AVAILABLE: &str = "421 4.3.2 Service not available, closing transmission channel";

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    shared.sessions.fetch_add(1, Ordering::SeqCst);
    let (read_half, mut w) = stream.into_split();
    let mut r = BufReader::new(read_half);
    if shared.is_down() {
        reply(&mut w, SERVICE_NOT_AVAILABLE).await?;
        return Ok(());
    }
    reply(&mut w, "220 coursegate-testkit ESMTP sink ready").await?;

    let mut line = Vec::new();
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut auth_user: Option<String> = None;

    while read_line(&mut r, &mut line).await? {
        let text = String::from_utf8_lossy(&line);
        let cmd_line = text.trim_end_matches(['\r', '\n']);
        if shared.is_down() {
            reply(&mut w, SERVICE_NOT_AVAILABLE).await?;
            return Ok(());
        }
        let (verb, arg) = cmd_line
            .split_once(' ')
            .map_or((cmd_line, ""), |(v, a)| (v, a));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                from = None;
                rcpts.clear();
                w.write_all(b"250-coursegate-testkit greets you\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 33554432\r\n")
                    .await?;
                w.flush().await?;
            }
            "HELO" => {
                from = None;
                rcpts.clear();
                reply(&mut w, "250 coursegate-testkit").await?;
            }
            "AUTH" => {
                let mut parts = arg.split_whitespace();
                let mech = parts.next().unwrap_or("").to_ascii_uppercase();
                let initial = parts.next().map(str::to_owned);
                let user = match mech.as_str() {
                    "PLAIN" => {
                        let resp = match initial {
                            Some(i) => i,
                            None => {
                                reply(&mut w, "334 ").await?;
                                if !read_line(&mut r, &mut line).await? {
                                    return Ok(());
                                }
                                String::from_utf8_lossy(&line).trim().to_owned()
                            }
                        };
                        decode_b64(&resp).and_then(|raw| {
                            // authzid \0 authcid \0 password
                            let mut fields = raw.split(|b| *b == 0);
                            let _authz = fields.next()?;
                            let user = fields.next()?;
                            fields.next()?;
                            Some(String::from_utf8_lossy(user).into_owned())
                        })
                    }
                    "LOGIN" => {
                        let user_b64 = match initial {
                            Some(i) => i,
                            None => {
                                reply(&mut w, "334 VXNlcm5hbWU6").await?;
                                if !read_line(&mut r, &mut line).await? {
                                    return Ok(());
                                }
                                String::from_utf8_lossy(&line).trim().to_owned()
                            }
                        };
                        reply(&mut w, "334 UGFzc3dvcmQ6").await?;
                        if !read_line(&mut r, &mut line).await? {
                            return Ok(());
                        }
                        decode_b64(&user_b64).map(|u| String::from_utf8_lossy(&u).into_owned())
                    }
                    _ => {
                        reply(&mut w, "504 5.5.4 Unrecognized authentication type").await?;
                        continue;
                    }
                };
                match user {
                    Some(u) => {
                        auth_user = Some(u);
                        reply(&mut w, "235 2.7.0 Authentication successful").await?;
                    }
                    None => reply(&mut w, "501 5.5.2 Cannot decode response").await?,
                }
            }
            "MAIL" => match strip_prefix_ci(arg, "FROM:").and_then(path_arg) {
                Some(addr) => {
                    from = Some(addr);
                    rcpts.clear();
                    reply(&mut w, "250 2.1.0 Ok").await?;
                }
                None => reply(&mut w, "501 5.5.4 Syntax: MAIL FROM:<address>").await?,
            },
            "RCPT" => {
                if from.is_none() {
                    reply(&mut w, "503 5.5.1 Need MAIL command first").await?;
                    continue;
                }
                let Some(addr) = strip_prefix_ci(arg, "TO:").and_then(path_arg) else {
                    reply(&mut w, "501 5.5.4 Syntax: RCPT TO:<address>").await?;
                    continue;
                };
                let key = addr.to_ascii_lowercase();
                let (perm, temp) = {
                    let rules = lock(&shared.rules);
                    (
                        rules.reject_permanently.contains(&key),
                        rules.reject_temporarily.contains(&key),
                    )
                };
                if perm {
                    reply(
                        &mut w,
                        &format!("550 5.1.1 <{addr}>: Recipient address rejected: User unknown"),
                    )
                    .await?;
                } else if temp {
                    reply(
                        &mut w,
                        &format!("450 4.2.1 <{addr}>: Mailbox temporarily unavailable"),
                    )
                    .await?;
                } else {
                    rcpts.push(addr);
                    reply(&mut w, "250 2.1.5 Ok").await?;
                }
            }
            "DATA" => {
                if from.is_none() || rcpts.is_empty() {
                    reply(&mut w, "503 5.5.1 Need RCPT command first").await?;
                    continue;
                }
                reply(&mut w, "354 End data with <CR><LF>.<CR><LF>").await?;
                let mut raw: Vec<u8> = Vec::new();
                let mut too_big = false;
                loop {
                    if !read_line(&mut r, &mut line).await? {
                        return Ok(());
                    }
                    let content = line
                        .strip_suffix(b"\r\n")
                        .or_else(|| line.strip_suffix(b"\n"))
                        .unwrap_or(&line);
                    if content == b"." {
                        break;
                    }
                    let content = content.strip_prefix(b".").unwrap_or(content);
                    if raw.len() + content.len() + 2 > MAX_MESSAGE {
                        too_big = true;
                        continue;
                    }
                    raw.extend_from_slice(content);
                    raw.extend_from_slice(b"\r\n");
                }
                if too_big {
                    reply(&mut w, "552 5.3.4 Message too big").await?;
                } else {
                    let mail = ReceivedMail {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut rcpts),
                        raw: String::from_utf8_lossy(&raw).into_owned(),
                        auth_user: auth_user.clone(),
                    };
                    let id = shared.push(mail);
                    reply(&mut w, &format!("250 2.0.0 Ok: queued as SINK{id:06}")).await?;
                }
                from = None;
                rcpts.clear();
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                reply(&mut w, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(&mut w, "250 2.0.0 Ok").await?,
            "VRFY" => reply(&mut w, "252 2.0.0 Cannot VRFY user").await?,
            "QUIT" => {
                reply(&mut w, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            "" => reply(&mut w, "500 5.5.2 Error: bad syntax").await?,
            _ => reply(&mut w, "502 5.5.2 Error: command not recognized").await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(raw: &str) -> ReceivedMail {
        ReceivedMail {
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            raw: raw.replace('\n', "\r\n"),
            auth_user: None,
        }
    }

    #[test]
    fn finds_code_and_link() {
        let m = mail(
            "Subject: =?utf-8?q?Hi_there?=\nMessage-ID: <x@y>\nX-Long: a\n b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nOrder 1234567 and token abc123456def\nOpen https://ex.test/l/tok_=\nabc?x=3D1.\nYour code:\n482913\n",
        );
        assert_eq!(m.subject().as_deref(), Some("Hi there"));
        assert_eq!(m.message_id().as_deref(), Some("<x@y>"));
        assert_eq!(m.header("x-long").as_deref(), Some("a b"));
        assert_eq!(
            m.find_link("https://ex.test/").as_deref(),
            Some("https://ex.test/l/tok_abc?x=1")
        );
        assert_eq!(m.find_code().as_deref(), Some("482913"));
    }

    async fn expect(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, code: &str) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert!(line.starts_with(code), "wanted {code}, got {line:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    #[tokio::test]
    async fn raw_conversation() {
        let sink = SmtpSink::start().await;
        assert!(sink.url().starts_with("smtp://127.0.0.1:"));
        let (rd, mut w) = TcpStream::connect(sink.addr()).await.unwrap().into_split();
        let mut r = BufReader::new(rd);
        expect(&mut r, "220").await;
        for (cmd, code) in [
            ("HELO client.test", "250"),
            ("RCPT TO:<x@example.com>", "503"),
            ("DATA", "503"),
            ("MAIL FROM:<>", "250"),
            ("RCPT TO:<x@example.com>", "250"),
            ("RSET", "250"),
            ("NOOP", "250"),
            ("FOO", "502"),
            ("MAIL FROM:<s@example.com> SIZE=10", "250"),
            ("rcpt to:<x@example.com>", "250"),
            ("RCPT TO:<y@example.com>", "250"),
            ("DATA", "354"),
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
            expect(&mut r, code).await;
        }
        w.write_all(b"Subject: dots\r\n\r\n..leading\r\n...\r\nend\r\n.\r\n")
            .await
            .unwrap();
        let queued = expect(&mut r, "250").await;
        assert!(queued.contains("queued as"));
        w.write_all(b"QUIT\r\n").await.unwrap();
        expect(&mut r, "221").await;

        let mails = sink.wait_for(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(mails[0].from, "s@example.com");
        assert_eq!(mails[0].to, vec!["x@example.com", "y@example.com"]);
        assert_eq!(
            mails[0].raw,
            "Subject: dots\r\n\r\n.leading\r\n..\r\nend\r\n"
        );
        assert_eq!(sink.messages_to("Y@example.com").len(), 1);
        sink.clear();
        assert!(sink.messages().is_empty());
        let err = sink
            .wait_for(1, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err.got.len(), 0);
    }

    #[tokio::test]
    async fn down_answers_421_at_greeting_and_mid_session() {
        let sink = SmtpSink::start().await;
        let (rd, mut w) = TcpStream::connect(sink.addr()).await.unwrap().into_split();
        let mut r = BufReader::new(rd);
        expect(&mut r, "220").await;
        sink.set_down(true);
        assert!(sink.is_down());
        w.write_all(b"EHLO x\r\n").await.unwrap();
        expect(&mut r, "421").await;

        let (rd, _w) = TcpStream::connect(sink.addr()).await.unwrap().into_split();
        let mut r = BufReader::new(rd);
        expect(&mut r, "421").await;
        sink.set_down(false);
        let (rd, _w) = TcpStream::connect(sink.addr()).await.unwrap().into_split();
        let mut r = BufReader::new(rd);
        expect(&mut r, "220").await;
        assert_eq!(sink.sessions_opened(), 3);
    }

    #[test]
    fn link_from_escaped_html() {
        let m = mail(
            "Subject: x\nContent-Type: text/html; charset=utf-8\n\n<a href=\"https:&#x2F;&#x2F;ex.test&#x2F;l&#x2F;t?a=1&amp;b=2\">go</a> &bogus; &#xZZ;\n",
        );
        assert_eq!(
            m.find_link("https://ex.test/").as_deref(),
            Some("https://ex.test/l/t?a=1&b=2")
        );
        assert_eq!(
            decode_entities("a &bogus; &#xZZ; &#47; &"),
            "a &bogus; &#xZZ; / &"
        );
    }

    #[test]
    fn code_on_a_line_mentioning_code() {
        assert_eq!(
            find_code_in("call 555 123\nThe code is 654321, valid 10 minutes").as_deref(),
            Some("654321")
        );
        assert_eq!(find_code_in("nothing 12345 here 1234567"), None);
    }
}
