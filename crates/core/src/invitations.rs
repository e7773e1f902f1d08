//! CSV invitations: parse the sheet, preview every row (errors and
//! duplicates flagged, nothing written), then send: each good row enrols
//! the learner and queues their link email through the outbox, all in one
//! transaction. The sheet is parsed again on confirm; the preview is never
//! trusted.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use coursegate_store::{models::InvitationRow, repo, Tx};
use serde::Serialize;
use serde_json::json;

use crate::{
    audit::{self, Actor},
    enrolments::{self, Grant, Source},
    ids::new_id,
    learners,
    links::{self, IssueLearner, LinkSettings, SendOptions},
    scope::Scope,
    sessions::Destination,
    tokens::Secret,
    types::{parse_name, Email},
    CoreError,
};

/// The most rows one sheet may hold.
pub const MAX_ROWS: usize = 1000;

const COLUMNS: [&str; 6] = ["email", "name", "course", "start", "end", "reference"];

/// The cell separator of a sheet: a semicolon when the first line holds more
/// semicolons than commas (spreadsheets in many locales export so), else a
/// comma.
fn delimiter(text: &str) -> char {
    let first = text.lines().next().unwrap_or("");
    let (mut commas, mut semis, mut quoted) = (0, 0, false);
    for c in first.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => commas += 1,
            ';' if !quoted => semis += 1,
            _ => {}
        }
    }
    if semis > commas {
        ';'
    } else {
        ','
    }
}

/// Splits CSV text (RFC 4180: quoted fields, doubled quotes, CRLF or LF;
/// comma or semicolon separated, a leading byte order mark ignored) into
/// records. Blank lines are skipped.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, CoreError> {
    let text = text.trim_start_matches('\u{feff}');
    let sep = delimiter(text);
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut was_quoted) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            c if c == sep => {
                row.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                row.push(std::mem::take(&mut field));
                was_quoted = false;
                if !(row.len() == 1 && row[0].trim().is_empty()) {
                    rows.push(std::mem::take(&mut row));
                } else {
                    row.clear();
                }
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err(CoreError::invalid(
            "csv",
            "a quoted cell is not closed (a \" is missing)",
        ));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        if !(row.len() == 1 && row[0].trim().is_empty()) {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// One row of the sheet as the preview shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The line in the sheet (the header is line 1).
    pub line: usize,
    pub email: String,
    pub name: String,
    pub course: String,
    pub start: String,
    pub end: String,
    pub reference: String,
    pub errors: Vec<String>,
    /// The same email and course appear on an earlier line.
    pub duplicate_of: Option<usize>,
    #[serde(skip)]
    parsed: Option<Parsed>,
}

#[derive(Debug, Clone)]
struct Parsed {
    email: Email,
    name: Option<String>,
    course_id: String,
    slug: String,
    starts_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

impl Row {
    pub fn will_send(&self) -> bool {
        self.parsed.is_some() && self.duplicate_of.is_none()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub rows: Vec<Row>,
    pub to_send: usize,
    pub with_errors: usize,
    pub duplicates: usize,
}

fn day(field: &str, s: &str) -> Result<Option<DateTime<Utc>>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| Some(d.and_time(NaiveTime::MIN).and_utc()))
        .map_err(|_| format!("{field}: must be a date like 2027-01-31"))
}

/// Checks every row; writes nothing. A row for a course outside `scope` is
/// an error of that row (`course_out_of_scope`).
pub fn preview(tx: &mut Tx, text: &str, scope: &Scope) -> Result<Preview, CoreError> {
    let records = parse_csv(text)?;
    let Some((header, body)) = records.split_first() else {
        return Err(CoreError::invalid(
            "csv",
            "the sheet is empty: the first line names the columns (email,name,course,start,end,reference)",
        ));
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    for h in &header {
        if !COLUMNS.contains(&h.as_str()) {
            return Err(CoreError::invalid(
                "csv",
                format!("unknown column {h:?}: use email, name, course, start, end, reference"),
            ));
        }
    }
    for required in ["email", "course"] {
        if !header.iter().any(|h| h == required) {
            return Err(CoreError::invalid(
                "csv",
                format!("the first line must name a {required} column"),
            ));
        }
    }
    if body.len() > MAX_ROWS {
        return Err(CoreError::invalid(
            "csv",
            format!(
                "at most {MAX_ROWS} rows per sheet; this one has {}",
                body.len()
            ),
        ));
    }
    let col = |r: &[String], name: &str| -> String {
        header
            .iter()
            .position(|h| h == name)
            .and_then(|i| r.get(i))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut keys: HashSet<String> = HashSet::new();
    let mut rows = Vec::new();
    for (i, r) in body.iter().enumerate() {
        let line = i + 2;
        let mut row = Row {
            line,
            email: col(r, "email"),
            name: col(r, "name"),
            course: col(r, "course"),
            start: col(r, "start"),
            end: col(r, "end"),
            reference: col(r, "reference"),
            errors: Vec::new(),
            duplicate_of: None,
            parsed: None,
        };
        if r.len() > header.len() {
            row.errors
                .push(format!("{} cells, but {} columns", r.len(), header.len()));
        }
        let email = Email::parse(&row.email).map_err(|e| row.errors.push(e.to_string()));
        let name = parse_name("name", Some(&row.name)).map_err(|e| row.errors.push(e.to_string()));
        let course = if row.course.is_empty() {
            row.errors.push("course: is required".into());
            None
        } else {
            match repo::courses::get_by_slug(tx, &row.course)? {
                None => {
                    row.errors
                        .push(format!("course: there is no course {:?}", row.course));
                    None
                }
                Some(c) if !scope.allows(&c.id) => {
                    row.errors.push(format!(
                        "course: {:?} is not one of your courses (course_out_of_scope)",
                        row.course
                    ));
                    None
                }
                Some(c) => Some(c),
            }
        };
        let starts = day("start", &row.start).map_err(|e| row.errors.push(e));
        let ends = day("end", &row.end).map_err(|e| row.errors.push(e));
        if let (Ok(Some(s)), Ok(Some(e))) = (&starts, &ends) {
            if e <= s {
                row.errors.push("end: must be after start".into());
            }
        }
        if row.reference.chars().count() > 200 {
            row.errors
                .push("reference: is longer than 200 characters".into());
        }
        if let (Ok(email), Ok(name), Some(c), Ok(starts_at), Ok(expires_at), true) =
            (email, name, course, starts, ends, row.errors.is_empty())
        {
            let key = format!("{}\u{0}{}", email.lower(), c.slug);
            if !keys.insert(key.clone()) {
                row.duplicate_of = seen.iter().find(|(k, _)| *k == key).map(|(_, l)| *l);
            } else {
                seen.push((key, line));
            }
            row.parsed = Some(Parsed {
                email,
                name,
                course_id: c.id,
                slug: c.slug,
                starts_at,
                expires_at,
            });
        }
        rows.push(row);
    }
    let to_send = rows.iter().filter(|r| r.will_send()).count();
    let with_errors = rows.iter().filter(|r| !r.errors.is_empty()).count();
    let duplicates = rows.iter().filter(|r| r.duplicate_of.is_some()).count();
    Ok(Preview {
        rows,
        to_send,
        with_errors,
        duplicates,
    })
}

/// What sending did.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub queued: usize,
    pub skipped: usize,
    /// Follow the emails at `/staff/invitations/batches/{batch_id}`.
    pub batch_id: String,
}

/// Enrols every good row and queues its link email (the outbox delivers).
#[allow(clippy::too_many_arguments)]
pub fn send(
    tx: &mut Tx,
    now: DateTime<Utc>,
    secret: &Secret,
    settings: &LinkSettings,
    actor: &Actor,
    base_url: &str,
    text: &str,
    scope: &Scope,
) -> Result<Sent, CoreError> {
    let p = preview(tx, text, scope)?;
    let mut queued = 0;
    let batch_id = new_id();
    let mut sent_rows = Vec::new();
    for r in p.rows.iter().filter(|r| r.will_send()) {
        let Some(x) = &r.parsed else { continue };
        let l =
            learners::upsert_by_email(tx, now, &x.email, x.name.as_deref(), None, false)?.learner;
        let reference = Some(r.reference.clone()).filter(|s| !s.is_empty());
        let g = enrolments::grant(
            tx,
            now,
            Grant {
                learner_id: l.id.clone(),
                course_id: x.course_id.clone(),
                source: Source::Csv,
                source_ref: reference.clone(),
                starts_at: x.starts_at,
                expires_at: x.expires_at,
            },
        )?;
        audit::record(
            tx,
            now,
            actor,
            "enrolment.granted",
            Some(("enrolment", &g.enrolment.id)),
            json!({ "course": x.slug, "via": "csv", "line": r.line }),
        )?;
        let issued = links::issue_learner(
            tx,
            now,
            secret,
            settings,
            actor,
            IssueLearner {
                learner_id: l.id.clone(),
                destination: Destination::Course {
                    slug: x.slug.clone(),
                },
                kind: None,
                send: Some(SendOptions {
                    base_url: base_url.to_string(),
                    reference,
                    code_for_browser: None,
                }),
            },
        )?;
        sent_rows.push(InvitationRow {
            batch_id: batch_id.clone(),
            line: i32::try_from(r.line).unwrap_or(i32::MAX),
            email: x.email.as_str().to_string(),
            course_slug: x.slug.clone(),
            learner_id: l.id,
            outbox_id: issued.outbox_id,
            created_by: actor.id.clone(),
            created_at: now.naive_utc(),
        });
        queued += 1;
    }
    repo::scopes::insert_invitation_rows(tx, &sent_rows)?;
    let skipped = p.rows.len() - queued;
    audit::record(
        tx,
        now,
        actor,
        "invitations.sent",
        None,
        json!({ "queued": queued, "skipped": skipped, "batch_id": batch_id }),
    )?;
    Ok(Sent {
        queued,
        skipped,
        batch_id,
    })
}

/// One sent row of a batch and where its email is.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    pub line: i32,
    pub email: String,
    pub course: String,
    /// queued | retrying | sent | dead | unknown
    pub state: &'static str,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub outbox_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub id: String,
    pub rows: Vec<BatchRow>,
    pub queued: usize,
    pub retrying: usize,
    pub sent: usize,
    pub dead: usize,
    /// Something is still on its way (the page refreshes itself).
    pub pending: bool,
}

/// The progress of a sent sheet. A scoped instructor sees only the batches
/// they sent themselves.
pub fn batch(tx: &mut Tx, scope: &Scope, viewer: &str, id: &str) -> Result<Batch, CoreError> {
    let rows = repo::scopes::invitation_batch(tx, id)?;
    if rows.is_empty()
        || (scope.is_scoped()
            && rows
                .iter()
                .any(|(r, _)| r.created_by.as_deref() != Some(viewer)))
    {
        return Err(CoreError::NotFound("batch"));
    }
    let rows: Vec<BatchRow> = rows
        .into_iter()
        .map(|(r, m)| {
            let state = match m.as_ref() {
                None => "unknown",
                Some(m) => match (m.status.as_str(), m.attempts) {
                    (repo::outbox::PENDING, 0) => "queued",
                    (repo::outbox::PENDING, _) => "retrying",
                    (repo::outbox::DEAD, _) => "dead",
                    _ => "sent",
                },
            };
            BatchRow {
                line: r.line,
                email: r.email,
                course: r.course_slug,
                state,
                attempts: m.as_ref().map(|m| m.attempts).unwrap_or(0),
                last_error: m.and_then(|m| m.last_error),
                outbox_id: r.outbox_id,
            }
        })
        .collect();
    let count = |s: &str| rows.iter().filter(|r| r.state == s).count();
    let (queued, retrying, sent, dead) = (
        count("queued"),
        count("retrying"),
        count("sent"),
        count("dead"),
    );
    Ok(Batch {
        id: id.to_string(),
        pending: queued + retrying > 0,
        queued,
        retrying,
        sent,
        dead,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_csv;

    #[test]
    fn quoted_cells_commas_and_line_ends() {
        let r =
            parse_csv("email,name\r\n\"a@x.test\",\"Smith, \"\"Jo\"\"\"\n\nb@x.test,Bo\n").unwrap();
        assert_eq!(
            r,
            vec![
                vec!["email".to_string(), "name".into()],
                vec!["a@x.test".into(), "Smith, \"Jo\"".into()],
                vec!["b@x.test".into(), "Bo".into()],
            ]
        );
        assert!(parse_csv("email\n\"open").is_err());
    }

    #[test]
    fn semicolons_and_a_byte_order_mark() {
        let r =
            parse_csv("\u{feff}email;name;course\r\na@x.test;\"Smith; Jo\";safety\r\n").unwrap();
        assert_eq!(
            r,
            vec![
                vec!["email".to_string(), "name".into(), "course".into()],
                vec!["a@x.test".into(), "Smith; Jo".into(), "safety".into()],
            ]
        );
        // A comma sheet keeps semicolons inside cells.
        let r = parse_csv("email,name\na@x.test,A;B\n").unwrap();
        assert_eq!(r[1], vec!["a@x.test".to_string(), "A;B".into()]);
    }
}
