//! What an instructor picks in the Deep Linking catalogue: one or more whole
//! courses, or a single lesson of a course. A lesson item carries the
//! course and the lesson in `custom`; launching it enrols the learner in the
//! course as usual and opens that lesson ([`landing`]).

use chrono::{DateTime, Utc};
use coursegate_store::{
    models::{Course, Lesson, LtiDeepLinkRequest, LtiPlatform},
    repo, Tx,
};
use serde::Serialize;

use crate::{lti, CoreError};

/// The `custom` key of the lesson of a lesson item.
pub const CUSTOM_LESSON: &str = "lesson";

/// What the picker form asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Whole courses by slug (one unless the platform accepts several).
    Courses(Vec<String>),
    /// One lesson of one course.
    Lesson { course: String, lesson_id: String },
}

fn pick_refused(message: &str) -> CoreError {
    CoreError::refused("deep_link_pick_invalid", message.to_string())
}

impl Pick {
    /// From the form: `course` fields (slugs) and `lesson` fields
    /// (`<course slug>/<lesson id>`).
    pub fn from_form(courses: Vec<String>, lessons: Vec<String>) -> Result<Pick, CoreError> {
        match (courses.is_empty(), lessons.len()) {
            (true, 0) => Err(pick_refused("Choose a course or a lesson to add.")),
            (false, 0) => Ok(Pick::Courses(courses)),
            (true, 1) => {
                let (course, lesson_id) = lessons[0]
                    .split_once('/')
                    .filter(|(c, l)| !c.is_empty() && !l.is_empty())
                    .ok_or_else(|| {
                        pick_refused("That lesson choice is not one the page offered.")
                    })?;
                Ok(Pick::Lesson {
                    course: course.to_string(),
                    lesson_id: lesson_id.to_string(),
                })
            }
            (true, _) => Err(pick_refused("Choose a single lesson.")),
            (false, _) => Err(pick_refused(
                "Choose either whole courses or a single lesson, not both.",
            )),
        }
    }
}

/// One chosen item.
#[derive(Debug, Clone)]
pub struct Picked {
    pub course: Course,
    /// Set for a lesson item.
    pub lesson: Option<Lesson>,
}

/// Closes the Deep Linking request `id` of this session (single use) with
/// what was picked; only published courses and their lessons can be picked.
pub fn answer(
    tx: &mut Tx,
    now: DateTime<Utc>,
    id: &str,
    session_id: &str,
    pick: &Pick,
) -> Result<(LtiDeepLinkRequest, LtiPlatform, Vec<Picked>), CoreError> {
    match pick {
        Pick::Courses(slugs) => {
            let (r, p, courses) = lti::answer_deep_link(tx, now, id, session_id, slugs)?;
            let items = courses
                .into_iter()
                .map(|course| Picked {
                    course,
                    lesson: None,
                })
                .collect();
            Ok((r, p, items))
        }
        Pick::Lesson { course, lesson_id } => {
            let (r, p) = lti::deep_link_request(tx, now, id, session_id)?;
            let course = repo::courses::get_by_slug(tx, course)?
                .filter(|c| c.published)
                .ok_or(CoreError::NotFound("course"))?;
            let lesson = repo::courses::get_lesson(tx, lesson_id)?
                .filter(|l| l.course_id == course.id)
                .ok_or(CoreError::NotFound("lesson"))?;
            if !repo::lti::use_deep_link_request(tx, &r.id, now.naive_utc())? {
                return Err(CoreError::refused(
                    "deep_link_request_used",
                    "Content was already returned for this request.",
                ));
            }
            Ok((
                r,
                p,
                vec![Picked {
                    course,
                    lesson: Some(lesson),
                }],
            ))
        }
    }
}

/// A lesson as the catalogue shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogueLesson {
    pub id: String,
    pub title: String,
}

/// A course card of the catalogue, with its lessons.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogueCourse {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub graded: bool,
    pub lessons: Vec<CatalogueLesson>,
}

/// The published courses matching `needle` (title, summary, slug or a
/// lesson title; empty matches all), with their lessons in order.
pub fn catalogue(tx: &mut Tx, needle: &str) -> Result<Vec<CatalogueCourse>, CoreError> {
    let needle = needle.trim().to_lowercase();
    let mut out = Vec::new();
    for c in repo::courses::list(tx, true)? {
        let lessons = repo::courses::lessons_of(tx, &c.id)?;
        let hit = needle.is_empty()
            || c.title.to_lowercase().contains(&needle)
            || c.summary.to_lowercase().contains(&needle)
            || c.slug.contains(&needle)
            || lessons
                .iter()
                .any(|l| l.title.to_lowercase().contains(&needle));
        if !hit {
            continue;
        }
        out.push(CatalogueCourse {
            slug: c.slug,
            title: c.title,
            summary: c.summary,
            graded: c.graded,
            lessons: lessons
                .into_iter()
                .map(|l| CatalogueLesson {
                    id: l.id,
                    title: l.title,
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Where a learner launch into `course_slug` lands: the lesson named by the
/// item's `custom.lesson` when it belongs to that course, else the course
/// page (a lesson removed since the link was made).
pub fn landing(tx: &mut Tx, course_slug: &str, lesson: Option<&str>) -> Result<String, CoreError> {
    let course_page = format!("/courses/{course_slug}");
    let Some(lesson_id) = lesson.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok(course_page);
    };
    let Some(course) = repo::courses::get_by_slug(tx, course_slug)? else {
        return Ok(course_page);
    };
    Ok(match repo::courses::get_lesson(tx, lesson_id)? {
        Some(l) if l.course_id == course.id => format!("/courses/{course_slug}/lessons/{}", l.id),
        _ => course_page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: CoreError) -> &'static str {
        e.code()
    }

    #[test]
    fn picks_from_the_form() {
        assert_eq!(
            Pick::from_form(vec!["a".into(), "b".into()], vec![]).unwrap(),
            Pick::Courses(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            Pick::from_form(vec![], vec!["intro/l-1".into()]).unwrap(),
            Pick::Lesson {
                course: "intro".into(),
                lesson_id: "l-1".into()
            }
        );
        for (c, l) in [
            (vec![], vec![]),
            (vec!["a".to_string()], vec!["a/l".to_string()]),
            (vec![], vec!["a/l".to_string(), "a/m".to_string()]),
            (vec![], vec!["no-slash".to_string()]),
            (vec![], vec!["/l".to_string()]),
        ] {
            assert_eq!(
                code(Pick::from_form(c, l).unwrap_err()),
                "deep_link_pick_invalid"
            );
        }
    }
}
