//! Courses and lessons.

use chrono::{DateTime, Utc};
use coursegate_store::{
    models::{Course, Lesson},
    repo, Tx,
};
use serde::{Deserialize, Serialize};

use crate::{ids::new_id, types::Slug, CoreError};

/// How links to a course are minted by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkPolicy {
    /// Reusable course-access link bound to the enrolment.
    Access,
    /// One-time sign-in link.
    Once,
}

impl LinkPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPolicy::Access => "access",
            LinkPolicy::Once => "once",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s {
            "access" => Ok(LinkPolicy::Access),
            "once" => Ok(LinkPolicy::Once),
            _ => Err(CoreError::invalid(
                "link_policy",
                "must be \"access\" or \"once\"",
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewLesson {
    pub title: String,
    pub body_format: String,
    pub body: String,
    pub required: bool,
}

impl NewLesson {
    /// A Markdown lesson; the title is the first `# ` heading, else `fallback`.
    pub fn from_markdown(body: &str, fallback: &str) -> Self {
        let title = body
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| fallback.to_string());
        Self {
            title,
            body_format: "markdown".into(),
            body: body.to_string(),
            required: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewCourse {
    pub slug: Slug,
    pub title: String,
    pub summary: String,
    pub published: bool,
    pub graded: bool,
    pub link_policy: LinkPolicy,
    pub default_access_days: Option<i32>,
    pub lessons: Vec<NewLesson>,
}

pub fn validate_title(t: &str) -> Result<String, CoreError> {
    let t = t.trim();
    if t.is_empty() {
        return Err(CoreError::invalid("title", "a title is required"));
    }
    if t.chars().count() > 200 {
        return Err(CoreError::invalid("title", "is longer than 200 characters"));
    }
    Ok(t.to_string())
}

pub fn create(
    tx: &mut Tx,
    now: DateTime<Utc>,
    c: NewCourse,
) -> Result<(Course, Vec<Lesson>), CoreError> {
    let title = validate_title(&c.title)?;
    if repo::courses::get_by_slug(tx, c.slug.as_str())?.is_some() {
        return Err(CoreError::Conflict(format!(
            "a course with slug {:?} already exists",
            c.slug.as_str()
        )));
    }
    if let Some(d) = c.default_access_days {
        if !(1..=3650).contains(&d) {
            return Err(CoreError::invalid(
                "default_access_days",
                "must be between 1 and 3650",
            ));
        }
    }
    let n = now.naive_utc();
    let course = Course {
        id: new_id(),
        slug: c.slug.as_str().to_string(),
        title,
        summary: c.summary.trim().to_string(),
        published: c.published,
        graded: c.graded,
        link_policy: c.link_policy.as_str().to_string(),
        default_access_days: c.default_access_days,
        created_at: n,
        updated_at: n,
    };
    repo::courses::insert(tx, &course)?;
    let mut lessons = Vec::new();
    for (i, l) in c.lessons.into_iter().enumerate() {
        let lesson = Lesson {
            id: new_id(),
            course_id: course.id.clone(),
            position: i32::try_from(i + 1).unwrap_or(i32::MAX),
            title: validate_title(&l.title)?,
            body_format: l.body_format,
            body: l.body,
            required: l.required,
            created_at: n,
            updated_at: n,
        };
        repo::courses::insert_lesson(tx, &lesson)?;
        lessons.push(lesson);
    }
    Ok((course, lessons))
}

pub fn add_lesson(
    tx: &mut Tx,
    now: DateTime<Utc>,
    course_id: &str,
    l: NewLesson,
) -> Result<Lesson, CoreError> {
    let n = now.naive_utc();
    let lesson = Lesson {
        id: new_id(),
        course_id: course_id.to_string(),
        position: repo::courses::next_lesson_position(tx, course_id)?,
        title: validate_title(&l.title)?,
        body_format: l.body_format,
        body: l.body,
        required: l.required,
        created_at: n,
        updated_at: n,
    };
    repo::courses::insert_lesson(tx, &lesson)?;
    Ok(lesson)
}

pub fn by_slug(tx: &mut Tx, slug: &str) -> Result<Course, CoreError> {
    repo::courses::get_by_slug(tx, slug)?.ok_or(CoreError::NotFound("course"))
}

pub fn list(tx: &mut Tx) -> Result<Vec<(Course, usize)>, CoreError> {
    let courses = repo::courses::list(tx, false)?;
    let mut out = Vec::with_capacity(courses.len());
    for c in courses {
        let n = repo::courses::lessons_of(tx, &c.id)?.len();
        out.push((c, n));
    }
    Ok(out)
}
