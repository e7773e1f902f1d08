//! The access rule: may learner L open course C at time T?

use chrono::{DateTime, NaiveDateTime, Utc};
use coursegate_store::models::{Course, Enrolment};
use serde::Serialize;

/// Why access is refused. Each reason is distinct so pages can say what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Denied {
    NotEnrolled,
    NotStarted { starts_at: DateTime<Utc> },
    Expired { expired_at: DateTime<Utc> },
    Revoked { revoked_at: DateTime<Utc> },
    CourseUnpublished,
}

impl Denied {
    pub fn code(&self) -> &'static str {
        match self {
            Denied::NotEnrolled => "not_enrolled",
            Denied::NotStarted { .. } => "enrolment_not_started",
            Denied::Expired { .. } => "enrolment_expired",
            Denied::Revoked { .. } => "enrolment_revoked",
            Denied::CourseUnpublished => "course_unpublished",
        }
    }
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::NotEnrolled => f.write_str("you are not enrolled in this course"),
            Denied::NotStarted { starts_at } => write!(
                f,
                "your access to this course starts on {}",
                starts_at.format("%-d %B %Y at %H:%M UTC")
            ),
            Denied::Expired { expired_at } => write!(
                f,
                "your access to this course ended on {}",
                expired_at.format("%-d %B %Y at %H:%M UTC")
            ),
            Denied::Revoked { .. } => f.write_str("your access to this course has been withdrawn"),
            Denied::CourseUnpublished => f.write_str("this course is not available at the moment"),
        }
    }
}

pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

/// The rule, in order: the course must be published; the learner must hold an
/// enrolment that is not revoked, has started and has not expired.
/// `expires_at` is exclusive: at that instant access has ended.
pub fn check(
    course: &Course,
    enrolment: Option<&Enrolment>,
    now: DateTime<Utc>,
) -> Result<(), Denied> {
    let Some(e) = enrolment else {
        return Err(Denied::NotEnrolled);
    };
    if let Some(r) = e.revoked_at {
        return Err(Denied::Revoked { revoked_at: utc(r) });
    }
    if !course.published {
        return Err(Denied::CourseUnpublished);
    }
    let now = now.naive_utc();
    if let Some(s) = e.starts_at {
        if now < s {
            return Err(Denied::NotStarted { starts_at: utc(s) });
        }
    }
    if let Some(x) = e.expires_at {
        if now >= x {
            return Err(Denied::Expired { expired_at: utc(x) });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn course(published: bool) -> Course {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .unwrap()
            .naive_utc();
        Course {
            id: "c".into(),
            slug: "c".into(),
            title: "C".into(),
            summary: String::new(),
            published,
            graded: false,
            link_policy: "access".into(),
            default_access_days: None,
            created_at: t,
            updated_at: t,
        }
    }

    fn enrolment() -> Enrolment {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .unwrap()
            .naive_utc();
        Enrolment {
            id: "e".into(),
            learner_id: "l".into(),
            course_id: "c".into(),
            source: "staff".into(),
            source_ref: None,
            status: "active".into(),
            starts_at: None,
            expires_at: None,
            revoked_at: None,
            started_at: None,
            completed_at: None,
            version: 1,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn each_reason_is_distinct() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        assert_eq!(check(&course(true), None, now), Err(Denied::NotEnrolled));
        assert_eq!(check(&course(true), Some(&enrolment()), now), Ok(()));
        assert_eq!(
            check(&course(false), Some(&enrolment()), now),
            Err(Denied::CourseUnpublished)
        );

        let mut e = enrolment();
        e.starts_at = Some((now + Duration::days(1)).naive_utc());
        assert_eq!(
            check(&course(true), Some(&e), now).unwrap_err().code(),
            "enrolment_not_started"
        );

        let mut e = enrolment();
        e.expires_at = Some(now.naive_utc());
        assert_eq!(
            check(&course(true), Some(&e), now).unwrap_err().code(),
            "enrolment_expired"
        );
        e.expires_at = Some((now + Duration::seconds(1)).naive_utc());
        assert_eq!(check(&course(true), Some(&e), now), Ok(()));

        let mut e = enrolment();
        e.revoked_at = Some(now.naive_utc());
        assert_eq!(
            check(&course(true), Some(&e), now).unwrap_err().code(),
            "enrolment_revoked"
        );
    }
}
