//! Staff console services: the dashboard (counts and per-course funnels as
//! inline SVG), course and lesson editing, site settings, and the audit log
//! as CSV. Each service runs inside the caller's transaction and records who
//! did what in the audit log.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use coursegate_store::{
    models::{AuditEntry, Course, Lesson},
    repo, Tx,
};
use serde::Serialize;
use serde_json::json;

use crate::{
    audit::{self, Actor},
    courses::{self, LinkPolicy, NewCourse, NewLesson},
    scope::Scope,
    settings::{self, Site},
    types::{Email, Slug},
    CoreError,
};

/// What the dashboard shows at the top.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub learners: i64,
    pub courses: i64,
    pub enrolments: i64,
    pub outbox_pending: i64,
    pub outbox_dead: i64,
}

/// One course's funnel: totals and a chart over the last `days` days.
#[derive(Debug, Clone, Serialize)]
pub struct Funnel {
    pub slug: String,
    pub title: String,
    pub invited: usize,
    pub opened: usize,
    pub started: usize,
    pub completed: usize,
    /// Server-generated inline SVG (numbers and fixed labels only).
    pub svg: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub counts: Counts,
    pub funnels: Vec<Funnel>,
    pub days: i64,
}

pub const FUNNEL_DAYS: i64 = 30;

/// Counts and funnels for every course in scope (title order). A scoped
/// instructor's counts cover their courses only, and the outbox (which
/// they cannot see) counts nothing.
pub fn dashboard(tx: &mut Tx, now: DateTime<Utc>, scope: &Scope) -> Result<Dashboard, CoreError> {
    let counts = match scope.only() {
        None => Counts {
            learners: repo::learners::count(tx)?,
            courses: repo::console::course_count(tx, None)?,
            enrolments: repo::enrolments::count(tx)?,
            outbox_pending: repo::outbox::count_by_status(tx, "pending")?,
            outbox_dead: repo::outbox::count_by_status(tx, "dead")?,
        },
        Some(ids) => Counts {
            learners: repo::learners::count_in(tx, ids)?,
            courses: repo::console::course_count(tx, Some(ids))?,
            enrolments: repo::enrolments::count_in(tx, ids)?,
            outbox_pending: 0,
            outbox_dead: 0,
        },
    };
    let mut funnels = Vec::new();
    for c in scope.courses(tx)? {
        funnels.push(funnel(tx, now, &c)?);
    }
    Ok(Dashboard {
        counts,
        funnels,
        days: FUNNEL_DAYS,
    })
}

/// The four stage times of each enrolment in a course.
fn stage_times(tx: &mut Tx, course_id: &str) -> Result<Vec<[Option<NaiveDateTime>; 4]>, CoreError> {
    let rows = repo::console::funnel_rows(tx, course_id)?;
    let ids: Vec<String> = rows.iter().map(|r| r.enrolment_id.clone()).collect();
    let mut opened: HashMap<String, NaiveDateTime> = HashMap::new();
    for (e, redeemed, last_open, n) in repo::console::link_opens(tx, &ids)? {
        let t = match (redeemed, last_open.filter(|_| n > 0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = t {
            let slot = opened.entry(e).or_insert(t);
            *slot = (*slot).min(t);
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            // Starting a course means it was opened, whatever door it came through.
            let o = match (opened.get(&r.enrolment_id).copied(), r.started_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            [Some(r.invited_at), o, r.started_at, r.completed_at]
        })
        .collect())
}

fn funnel(tx: &mut Tx, now: DateTime<Utc>, c: &Course) -> Result<Funnel, CoreError> {
    let times = stage_times(tx, &c.id)?;
    let total = |i: usize| times.iter().filter(|t| t[i].is_some()).count();
    let end = now.naive_utc();
    let start = end - Duration::days(FUNNEL_DAYS);
    // Cumulative count per stage at the end of each day.
    let series: Vec<Vec<usize>> = (0..4)
        .map(|i| {
            (0..=FUNNEL_DAYS)
                .map(|d| {
                    let at = start + Duration::days(d);
                    times
                        .iter()
                        .filter(|t| t[i].is_some_and(|x| x <= at))
                        .count()
                })
                .collect()
        })
        .collect();
    Ok(Funnel {
        slug: c.slug.clone(),
        title: c.title.clone(),
        invited: total(0),
        opened: total(1),
        started: total(2),
        completed: total(3),
        svg: funnel_svg(&series),
    })
}

const STAGES: [(&str, &str); 4] = [
    ("invited", "#0b5cad"),
    ("opened", "#8250df"),
    ("started", "#9a6700"),
    ("completed", "#116329"),
];

/// A small line chart: one cumulative line per stage. Only numbers and fixed
/// words go into the markup, so there is nothing to escape.
pub fn funnel_svg(series: &[Vec<usize>]) -> String {
    let (w, h, pad) = (600.0_f64, 160.0_f64, 24.0_f64);
    let max = series
        .iter()
        .flat_map(|s| s.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let days = series.first().map(|s| s.len()).unwrap_or(1).max(2) - 1;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="Invited, opened, started and completed over the last {days} days" xmlns="http://www.w3.org/2000/svg">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="{pad}" y1="{y}" x2="{x2}" y2="{y}" stroke="#d0d7de"/><text x="2" y="{ty}" font-size="10" fill="#57606a">{max}</text><text x="2" y="{y}" font-size="10" fill="#57606a">0</text>"##,
        y = h - pad,
        x2 = w - 4.0,
        ty = pad,
    );
    for (i, s) in series.iter().enumerate() {
        let (name, colour) = STAGES[i.min(3)];
        let points: Vec<String> = s
            .iter()
            .enumerate()
            .map(|(d, v)| {
                let x = pad + (w - pad - 4.0) * (d as f64) / (days as f64);
                let y = (h - pad) - (h - 2.0 * pad) * (*v as f64) / (max as f64);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="stage-{name}" fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{name}: {}</title></polyline>"#,
            points.join(" "),
            s.last().copied().unwrap_or(0)
        );
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{y}" font-size="11" fill="{colour}">{name}</text>"#,
            x = pad + 120.0 * i as f64,
            y = h - 6.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// What the course form sends.
#[derive(Debug, Clone)]
pub struct CourseForm {
    pub title: String,
    pub summary: String,
    pub published: bool,
    pub graded: bool,
    pub link_policy: String,
    pub default_access_days: String,
}

fn access_days(s: &str) -> Result<Option<i32>, CoreError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let d: i32 = s
        .parse()
        .map_err(|_| CoreError::invalid("default_access_days", "must be a whole number of days"))?;
    if !(1..=3650).contains(&d) {
        return Err(CoreError::invalid(
            "default_access_days",
            "must be between 1 and 3650",
        ));
    }
    Ok(Some(d))
}

/// Creates a course. A scoped instructor is assigned the course they create,
/// so they keep seeing it.
pub fn create_course(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    scope: &Scope,
    slug: &str,
    f: CourseForm,
) -> Result<Course, CoreError> {
    let (c, _) = courses::create(
        tx,
        now,
        NewCourse {
            slug: Slug::parse(slug.trim())?,
            title: f.title,
            summary: f.summary,
            published: f.published,
            graded: f.graded,
            link_policy: LinkPolicy::parse(&f.link_policy)?,
            default_access_days: access_days(&f.default_access_days)?,
            lessons: Vec::new(),
        },
    )?;
    audit::record(
        tx,
        now,
        actor,
        "course.created",
        Some(("course", &c.id)),
        json!({ "slug": c.slug }),
    )?;
    if let (true, Some(staff_id)) = (scope.is_scoped(), actor.id.as_deref()) {
        crate::scope::assign(tx, now, actor, staff_id, &c.slug)?;
    }
    Ok(c)
}

pub fn update_course(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    scope: &Scope,
    slug: &str,
    f: CourseForm,
) -> Result<Course, CoreError> {
    let mut c = scope.course(tx, slug)?;
    c.title = courses::validate_title(&f.title)?;
    c.summary = f.summary.trim().to_string();
    c.published = f.published;
    c.graded = f.graded;
    c.link_policy = LinkPolicy::parse(&f.link_policy)?.as_str().to_string();
    c.default_access_days = access_days(&f.default_access_days)?;
    c.updated_at = now.naive_utc();
    repo::courses::update(tx, &c)?;
    audit::record(
        tx,
        now,
        actor,
        "course.updated",
        Some(("course", &c.id)),
        json!({ "slug": c.slug, "published": c.published }),
    )?;
    Ok(c)
}

fn lesson_of(tx: &mut Tx, course: &Course, lesson_id: &str) -> Result<Lesson, CoreError> {
    repo::courses::get_lesson(tx, lesson_id)?
        .filter(|l| l.course_id == course.id)
        .ok_or(CoreError::NotFound("lesson"))
}

/// Adds (`lesson_id` None) or edits a Markdown lesson.
#[allow(clippy::too_many_arguments)]
pub fn save_lesson(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    scope: &Scope,
    slug: &str,
    lesson_id: Option<&str>,
    title: &str,
    body: &str,
) -> Result<Lesson, CoreError> {
    let c = scope.course(tx, slug)?;
    let title = courses::validate_title(title)?;
    let l = match lesson_id {
        None => courses::add_lesson(
            tx,
            now,
            &c.id,
            NewLesson {
                title,
                body_format: "markdown".into(),
                body: body.to_string(),
                required: true,
            },
        )?,
        Some(id) => {
            let mut l = lesson_of(tx, &c, id)?;
            l.title = title;
            l.body = body.to_string();
            l.body_format = "markdown".into();
            l.updated_at = now.naive_utc();
            repo::courses::update_lesson(tx, &l)?;
            l
        }
    };
    audit::record(
        tx,
        now,
        actor,
        if lesson_id.is_some() {
            "lesson.updated"
        } else {
            "lesson.created"
        },
        Some(("lesson", &l.id)),
        json!({ "course": c.slug }),
    )?;
    Ok(l)
}

/// Moves a lesson one place up (`up`) or down; a no-op at either end.
pub fn move_lesson(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    scope: &Scope,
    slug: &str,
    lesson_id: &str,
    up: bool,
) -> Result<(), CoreError> {
    let c = scope.course(tx, slug)?;
    let lessons = repo::courses::lessons_of(tx, &c.id)?;
    let i = lessons
        .iter()
        .position(|l| l.id == lesson_id)
        .ok_or(CoreError::NotFound("lesson"))?;
    let j = if up { i.checked_sub(1) } else { Some(i + 1) };
    let Some(other) = j.and_then(|j| lessons.get(j)) else {
        return Ok(());
    };
    let (a, b) = (&lessons[i], other);
    let n = now.naive_utc();
    // Positions are unique per course: park one while swapping.
    repo::console::set_lesson_position(tx, &a.id, -1, n)?;
    repo::console::set_lesson_position(tx, &b.id, a.position, n)?;
    repo::console::set_lesson_position(tx, &a.id, b.position, n)?;
    audit::record(
        tx,
        now,
        actor,
        "lesson.moved",
        Some(("lesson", &a.id)),
        json!({ "course": c.slug, "direction": if up { "up" } else { "down" } }),
    )
}

pub fn delete_lesson(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    scope: &Scope,
    slug: &str,
    lesson_id: &str,
) -> Result<(), CoreError> {
    let c = scope.course(tx, slug)?;
    let l = lesson_of(tx, &c, lesson_id)?;
    repo::console::delete_lesson(tx, &l.id)?;
    audit::record(
        tx,
        now,
        actor,
        "lesson.deleted",
        Some(("lesson", &l.id)),
        json!({ "course": c.slug, "title": l.title }),
    )
}

pub type Rows = Vec<serde_json::Value>;

/// Identities, sessions and the audit trail for the learner detail page.
/// For a scoped instructor the trail holds only the changes to enrolments in
/// their courses.
pub fn learner_activity(
    tx: &mut Tx,
    now: DateTime<Utc>,
    scope: &Scope,
    id: &str,
) -> Result<(Rows, Rows, Rows), CoreError> {
    let fmt = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M").to_string();
    let identities = repo::learners::identities_of(tx, id)?
        .into_iter()
        .map(|i| json!({ "kind": i.kind, "key": i.identity_key, "created_at": fmt(i.created_at) }))
        .collect();
    let n = now.naive_utc();
    let sessions = repo::sessions::of_learner(tx, id, 50)?
        .into_iter()
        .map(|s| {
            let idle_end = s.last_seen_at + Duration::seconds(s.idle_timeout_secs);
            let active = s.revoked_at.is_none() && s.absolute_expires_at > n && idle_end > n;
            json!({
                "via": s.via, "created_at": fmt(s.created_at), "last_seen_at": fmt(s.last_seen_at),
                "state": if s.revoked_at.is_some() { "signed out" } else if active { "active" } else { "expired" },
                "ip": s.ip, "user_agent": s.user_agent,
            })
        })
        .collect();
    let mut audit = if scope.is_scoped() {
        Vec::new()
    } else {
        repo::audit::list(
            tx,
            &repo::audit::AuditFilter {
                subject_kind: Some("learner".into()),
                subject_id: Some(id.to_string()),
                ..Default::default()
            },
            repo::Page {
                limit: 50,
                offset: 0,
            },
        )?
    };
    // Enrolment changes are recorded against the enrolment.
    for (e, _) in repo::enrolments::of_learner(tx, id)? {
        if !scope.allows(&e.course_id) {
            continue;
        }
        audit.extend(repo::audit::list(
            tx,
            &repo::audit::AuditFilter {
                subject_kind: Some("enrolment".into()),
                subject_id: Some(e.id.clone()),
                ..Default::default()
            },
            repo::Page {
                limit: 50,
                offset: 0,
            },
        )?);
    }
    audit.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    audit.truncate(50);
    let audit = audit
        .into_iter()
        .map(|a| json!({ "at": fmt(a.at), "action": a.action, "actor_kind": a.actor_kind, "detail": a.detail }))
        .collect();
    Ok((identities, sessions, audit))
}

/// Validates and saves the site settings.
pub fn save_site(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    site: Site,
) -> Result<Site, CoreError> {
    let name = site.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(CoreError::invalid("name", "must be 1 to 100 characters"));
    }
    let support_email = match site.support_email.trim() {
        "" => String::new(),
        e => Email::parse(e)?.as_str().to_string(),
    };
    let support_phone = site.support_phone.trim().to_string();
    if support_phone.chars().count() > 40
        || !support_phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-()./".contains(c))
    {
        return Err(CoreError::invalid(
            "support_phone",
            "may hold digits, spaces and + - ( ) . / only",
        ));
    }
    let logo_url = site.logo_url.trim().to_string();
    if !logo_url.is_empty() {
        let ok = url::Url::parse(&logo_url)
            .map(|u| matches!(u.scheme(), "https" | "http"))
            .unwrap_or(false);
        if !ok || logo_url.len() > 500 {
            return Err(CoreError::invalid("logo_url", "must be an http(s) address"));
        }
    }
    let site = Site {
        name,
        support_email,
        support_phone,
        logo_url,
    };
    settings::save_site(tx, now, &site)?;
    audit::record(
        tx,
        now,
        actor,
        "settings.updated",
        Some(("settings", "site")),
        json!({ "name": site.name }),
    )?;
    Ok(site)
}

/// Puts a dead message back in the queue; only dead messages can be retried.
pub fn retry_outbox(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    id: &str,
) -> Result<(), CoreError> {
    let m = repo::outbox::get(tx, id)?.ok_or(CoreError::NotFound("message"))?;
    if m.status != repo::outbox::DEAD {
        return Err(CoreError::Conflict(format!(
            "only dead messages can be retried; this one is {}",
            m.status
        )));
    }
    if m.kind == "email"
        && serde_json::from_str::<serde_json::Value>(&m.payload)
            .is_ok_and(|p| crate::mailq::is_scrubbed(&p))
    {
        return Err(CoreError::Conflict(
            "this email carried a sign-in link or code, removed when delivery failed for good; send a new link from the learner's page instead".into(),
        ));
    }
    repo::outbox::replay(tx, id, now.naive_utc())?;
    audit::record(
        tx,
        now,
        actor,
        "outbox.retried",
        Some(("outbox", id)),
        json!({ "kind": m.kind, "topic": m.topic }),
    )
}

/// One CSV cell: quoted when needed, and cells a spreadsheet would run as a
/// formula (leading `=`, `+`, `-`, `@`, tab or carriage return) are
/// prefixed with a single quote.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The audit log as CSV (RFC 4180, CRLF line ends, a header row).
pub fn audit_csv(entries: &[AuditEntry]) -> String {
    let mut out = String::from(
        "at,actor_kind,actor_id,action,subject_kind,subject_id,ip,user_agent,detail\r\n",
    );
    for e in entries {
        let at = e.at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let cells = [
            at.as_str(),
            e.actor_kind.as_str(),
            e.actor_id.as_deref().unwrap_or(""),
            e.action.as_str(),
            e.subject_kind.as_deref().unwrap_or(""),
            e.subject_id.as_deref().unwrap_or(""),
            e.ip.as_deref().unwrap_or(""),
            e.user_agent.as_deref().unwrap_or(""),
            e.detail.as_str(),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn the_chart_has_one_line_per_stage() {
        let s = funnel_svg(&[vec![0, 1, 2], vec![0, 0, 1], vec![0, 0, 1], vec![0, 0, 0]]);
        assert_eq!(s.matches("<polyline").count(), 4);
        assert!(s.starts_with("<svg"));
    }
}
