//! Instructor scoping. An instructor sees and changes only the courses an
//! owner or admin assigned to them, the enrolments in those courses and the
//! learners who hold one; every other role sees everything. A `Scope` is
//! loaded once per request from the staff member's role and assignments,
//! and every console service that reads or changes a course, an enrolment
//! or a learner takes it and checks it (queries are filtered by it, direct
//! addresses are refused with `course_out_of_scope` / `learner_out_of_scope`).

use chrono::{DateTime, Utc};
use coursegate_store::{
    models::{Course, Enrolment, StaffCourseScope, StaffUser},
    repo, Tx,
};
use serde::Serialize;
use serde_json::json;

use crate::{
    audit::{self, Actor},
    courses,
    staff::Role,
    CoreError,
};

/// What one staff member may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every course (owner, admin, support).
    All,
    /// Only these course ids (an instructor's assignments; may be empty).
    Courses(Vec<String>),
}

impl Scope {
    /// The scope of a staff member with `role`.
    pub fn load(tx: &mut Tx, staff_id: &str, role: &str) -> Result<Scope, CoreError> {
        if role == Role::Instructor.as_str() {
            Ok(Scope::Courses(repo::scopes::course_ids_of(tx, staff_id)?))
        } else {
            Ok(Scope::All)
        }
    }

    /// The course ids to filter by, or `None` for all.
    pub fn only(&self) -> Option<&[String]> {
        match self {
            Scope::All => None,
            Scope::Courses(ids) => Some(ids),
        }
    }

    pub fn is_scoped(&self) -> bool {
        matches!(self, Scope::Courses(_))
    }

    /// A scoped staff member with no course assigned.
    pub fn is_empty(&self) -> bool {
        matches!(self, Scope::Courses(ids) if ids.is_empty())
    }

    pub fn allows(&self, course_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Courses(ids) => ids.iter().any(|i| i == course_id),
        }
    }

    /// Refuses a course outside the scope.
    pub fn check_course(&self, c: &Course) -> Result<(), CoreError> {
        if self.allows(&c.id) {
            Ok(())
        } else {
            Err(out_of_course(&c.slug))
        }
    }

    /// The course at `slug`, if it is in scope.
    pub fn course(&self, tx: &mut Tx, slug: &str) -> Result<Course, CoreError> {
        let c = courses::by_slug(tx, slug)?;
        self.check_course(&c)?;
        Ok(c)
    }

    /// The enrolment `id`, if its course is in scope.
    pub fn enrolment(&self, tx: &mut Tx, id: &str) -> Result<Enrolment, CoreError> {
        let e = repo::enrolments::get(tx, id)?.ok_or(CoreError::NotFound("enrolment"))?;
        if !self.allows(&e.course_id) {
            let slug = repo::courses::get(tx, &e.course_id)?
                .map(|c| c.slug)
                .unwrap_or_default();
            return Err(out_of_course(&slug));
        }
        Ok(e)
    }

    /// Refuses a learner who holds no enrolment in a course of the scope.
    pub fn check_learner(&self, tx: &mut Tx, learner_id: &str) -> Result<(), CoreError> {
        match self {
            Scope::All => Ok(()),
            Scope::Courses(ids) => {
                if repo::learners::enrolled_in_any(tx, learner_id, ids)? {
                    Ok(())
                } else {
                    Err(CoreError::OutOfScope {
                        code: "learner_out_of_scope",
                        message: "This learner is not enrolled in any of your courses. Ask an owner or admin if you need to see them.".into(),
                    })
                }
            }
        }
    }

    /// The courses in scope, title order (for lists and dropdowns).
    pub fn courses(&self, tx: &mut Tx) -> Result<Vec<Course>, CoreError> {
        Ok(repo::console::courses_in(tx, self.only())?)
    }
}

/// The refusal for a course outside an instructor's assignments.
pub fn out_of_course(slug: &str) -> CoreError {
    CoreError::OutOfScope {
        code: "course_out_of_scope",
        message: format!(
            "The course {slug:?} is not one of your courses. Ask an owner or admin to assign it to you."
        ),
    }
}

/// One staff member with their assigned courses, for the team pages.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub active: bool,
    pub courses: Vec<CourseRef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CourseRef {
    pub slug: String,
    pub title: String,
}

fn member(tx: &mut Tx, s: StaffUser) -> Result<Member, CoreError> {
    let courses = repo::scopes::courses_of(tx, &s.id)?
        .into_iter()
        .map(|c| CourseRef {
            slug: c.slug,
            title: c.title,
        })
        .collect();
    Ok(Member {
        id: s.id,
        email: s.email,
        name: s.name,
        role: s.role,
        active: s.active,
        courses,
    })
}

/// Every staff member (email order) with their assignments.
pub fn team(tx: &mut Tx) -> Result<Vec<Member>, CoreError> {
    let mut out = Vec::new();
    for s in repo::staff::list(tx)? {
        out.push(member(tx, s)?);
    }
    Ok(out)
}

/// One staff member with their assignments.
pub fn team_member(tx: &mut Tx, staff_id: &str) -> Result<Member, CoreError> {
    let s = repo::staff::get(tx, staff_id)?.ok_or(CoreError::NotFound("staff member"))?;
    member(tx, s)
}

/// Assigns the course at `slug` to an instructor (a no-op if it already is).
pub fn assign(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    staff_id: &str,
    slug: &str,
) -> Result<bool, CoreError> {
    let s = repo::staff::get(tx, staff_id)?.ok_or(CoreError::NotFound("staff member"))?;
    if s.role != Role::Instructor.as_str() {
        return Err(CoreError::invalid(
            "staff",
            format!(
                "only instructors are limited to courses; {} is {} and sees every course",
                s.email, s.role
            ),
        ));
    }
    let c = courses::by_slug(tx, slug)?;
    let added = repo::scopes::assign(
        tx,
        &StaffCourseScope {
            staff_id: s.id.clone(),
            course_id: c.id.clone(),
            created_at: now.naive_utc(),
            created_by: actor.id.clone(),
        },
    )?;
    if added {
        audit::record(
            tx,
            now,
            actor,
            "staff.course_assigned",
            Some(("staff", &s.id)),
            json!({ "course": c.slug }),
        )?;
    }
    Ok(added)
}

/// Takes the course at `slug` away from a staff member.
pub fn unassign(
    tx: &mut Tx,
    now: DateTime<Utc>,
    actor: &Actor,
    staff_id: &str,
    slug: &str,
) -> Result<bool, CoreError> {
    let s = repo::staff::get(tx, staff_id)?.ok_or(CoreError::NotFound("staff member"))?;
    let c = courses::by_slug(tx, slug)?;
    let removed = repo::scopes::unassign(tx, &s.id, &c.id)?;
    if removed {
        audit::record(
            tx,
            now,
            actor,
            "staff.course_unassigned",
            Some(("staff", &s.id)),
            json!({ "course": c.slug }),
        )?;
    }
    Ok(removed)
}
