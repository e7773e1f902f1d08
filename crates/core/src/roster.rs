//! The instructor view of an LTI resource link and the Names and Role
//! Provisioning roster import.
//!
//! The learners of an LMS context are the enrolments in the link's course
//! that came from a launch or a roster import of any resource link of the
//! same context (`lti_enrolment_links`). A roster import upserts each
//! learner member (LTI identity issuer + client_id + sub) and grants an
//! enrolment (source `lti`), linking it to the resource link so grade
//! passback can address the member by the platform's `sub`. The network
//! calls happen in the server, outside any transaction; [`import_members`]
//! writes one page's members in the caller's transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use coursegate_store::{models::LtiResourceLink, repo, Tx};
use serde::Serialize;
use serde_json::json;

use crate::{
    access::utc,
    ags,
    audit::{self, Actor},
    enrolments::{self, Grant, ProgressSummary, Source},
    learners, CoreError,
};

/// The OAuth2 scope of the memberships service.
pub const SCOPE_NRPS: &str =
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";

/// The OAuth2 scope of reading AGS results.
pub const SCOPE_RESULT_READONLY: &str =
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly";

/// The resource link an instructor view shows.
#[derive(Debug, Clone, Serialize)]
pub struct LinkInfo {
    pub id: String,
    pub title: Option<String>,
    pub context_id: Option<String>,
    pub context_title: Option<String>,
    /// The launch offered a memberships URL (the roster can be imported).
    pub can_import: bool,
    pub lineitem_url: Option<String>,
    /// The launch granted the AGS result.readonly scope.
    pub can_read_results: bool,
}

/// One learner of the context.
#[derive(Debug, Clone, Serialize)]
pub struct RosterRow {
    pub learner_id: String,
    pub enrolment_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The platform's `sub`.
    pub lti_sub: String,
    pub started: bool,
    pub completed: bool,
    pub completed_at: Option<DateTime<Utc>>,
    pub progress: ProgressSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstructorView {
    pub link: LinkInfo,
    pub course_slug: String,
    pub course_title: String,
    pub learners: Vec<RosterRow>,
    pub not_started: usize,
    pub completed: usize,
}

fn mapped_link(
    tx: &mut Tx,
    resource_link_row_id: &str,
) -> Result<(LtiResourceLink, coursegate_store::models::Course), CoreError> {
    let link = repo::lti::get_resource_link(tx, resource_link_row_id)?
        .ok_or(CoreError::NotFound("resource link"))?;
    let course_id = link.course_id.clone().ok_or_else(|| {
        CoreError::refused(
            "course_not_set_up",
            "This activity is not connected to a course yet.",
        )
    })?;
    let course = repo::courses::get(tx, &course_id)?.ok_or(CoreError::NotFound("course"))?;
    Ok((link, course))
}

/// The course of a resource link and the learners of its LMS context.
pub fn instructor_view(
    tx: &mut Tx,
    resource_link_row_id: &str,
) -> Result<InstructorView, CoreError> {
    let (link, course) = mapped_link(tx, resource_link_row_id)?;
    let links = repo::lti::resource_links_of_context(tx, &link)?;
    let ids: Vec<String> = links
        .iter()
        .filter(|l| l.course_id.as_deref() == Some(course.id.as_str()))
        .map(|l| l.id.clone())
        .collect();
    let subs: HashMap<String, String> = repo::lti_services::enrolment_links_of(tx, &ids)?
        .into_iter()
        .map(|l| (l.enrolment_id, l.lti_sub))
        .collect();
    let enrolled: Vec<_> = repo::enrolments::of_course(tx, &course.id)?
        .into_iter()
        .filter(|e| subs.contains_key(&e.id) && e.revoked_at.is_none())
        .collect();
    let eids: Vec<String> = enrolled.iter().map(|e| e.id.clone()).collect();
    let done = repo::enrolments::progress_of_many(tx, &eids)?;
    let lessons = repo::courses::lessons_of(tx, &course.id)?;
    let mut rows = Vec::with_capacity(enrolled.len());
    for e in enrolled {
        let learner = repo::learners::get(tx, &e.learner_id)?;
        let set: HashSet<String> = done
            .iter()
            .filter(|(eid, _)| *eid == e.id)
            .map(|(_, l)| l.clone())
            .collect();
        rows.push(RosterRow {
            learner_id: e.learner_id.clone(),
            lti_sub: subs.get(&e.id).cloned().unwrap_or_default(),
            name: learner.as_ref().and_then(|l| l.name.clone()),
            email: learner.as_ref().and_then(|l| l.email.clone()),
            started: e.started_at.is_some() || !set.is_empty(),
            completed: e.completed_at.is_some(),
            completed_at: e.completed_at.map(utc),
            progress: enrolments::summarise(&lessons, &set, e.completed_at.is_some()),
            enrolment_id: e.id,
        });
    }
    rows.sort_by(|a, b| {
        let key = |r: &RosterRow| {
            r.name
                .clone()
                .or_else(|| r.email.clone())
                .unwrap_or_else(|| r.lti_sub.clone())
                .to_lowercase()
        };
        key(a).cmp(&key(b))
    });
    Ok(InstructorView {
        not_started: rows.iter().filter(|r| !r.started).count(),
        completed: rows.iter().filter(|r| r.completed).count(),
        link: LinkInfo {
            id: link.id,
            title: link.title,
            context_id: link.context_id,
            context_title: link.context_title,
            can_import: link.nrps_url.is_some(),
            can_read_results: link
                .ags_scopes
                .as_deref()
                .is_some_and(|s| s.split_whitespace().any(|x| x == SCOPE_RESULT_READONLY)),
            lineitem_url: link.lineitem_url,
        },
        course_slug: course.slug,
        course_title: course.title,
        learners: rows,
    })
}

/// The platform a resource link's services are called on.
pub fn service_target_of(
    tx: &mut Tx,
    resource_link_row_id: &str,
) -> Result<ags::ServiceTarget, CoreError> {
    let (link, _) = mapped_link(tx, resource_link_row_id)?;
    ags::service_target(tx, &link.platform_id)
}

/// Where the roster of a resource link is fetched from.
#[derive(Debug, Clone)]
pub struct RosterSource {
    pub memberships_url: String,
    /// The NRPS differences URL the platform offered on the last sync of
    /// this context: only the changes since then.
    pub differences_url: Option<String>,
    pub target: ags::ServiceTarget,
}

/// The memberships URL of a resource link (stored from its launches).
pub fn roster_source(tx: &mut Tx, resource_link_row_id: &str) -> Result<RosterSource, CoreError> {
    let (link, course) = mapped_link(tx, resource_link_row_id)?;
    let memberships_url = link.nrps_url.clone().ok_or_else(|| {
        CoreError::refused(
            "roster_unavailable",
            "The LMS did not offer its Names and Roles service in this activity's launches, so the roster cannot be imported. Enable it for the tool in the LMS and launch again.",
        )
    })?;
    let differences_url = match &link.context_id {
        Some(ctx) => {
            repo::lti_services::get_context_roster(tx, &link.platform_id, ctx, &course.id)?
                .and_then(|r| r.differences_url)
        }
        None => None,
    };
    Ok(RosterSource {
        memberships_url,
        differences_url,
        target: ags::service_target(tx, &link.platform_id)?,
    })
}

/// Records a roster sync of the resource link's context into its course
/// and the differences URL its (last) memberships page offered, used by the
/// next sync of that course; `None` clears it (the next sync reads the full
/// roster). Per course, because the changes since a sync into one course
/// say nothing about another course linked in the same context.
pub fn record_sync(
    tx: &mut Tx,
    now: DateTime<Utc>,
    resource_link_row_id: &str,
    differences_url: Option<String>,
) -> Result<(), CoreError> {
    let (link, course) = mapped_link(tx, resource_link_row_id)?;
    let Some(context_id) = link.context_id else {
        return Ok(());
    };
    let n = now.naive_utc();
    repo::lti_services::put_context_roster(
        tx,
        &coursegate_store::models::LtiContextRoster {
            id: crate::ids::new_id(),
            platform_id: link.platform_id,
            context_id,
            course_id: course.id,
            differences_url,
            synced_at: n,
            created_at: n,
            updated_at: n,
        },
    )?;
    Ok(())
}

/// One learner member of a memberships page.
#[derive(Debug, Clone)]
pub struct RosterMember {
    pub sub: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `false` for a member the LMS lists as Inactive or Deleted: their
    /// enrolment ends (and comes back when a later sync lists them active).
    pub active: bool,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// Learner members seen.
    pub members: usize,
    /// Enrolments created or re-activated.
    pub enrolled: usize,
    /// Learners already enrolled and active.
    pub unchanged: usize,
    /// Enrolments ended because the LMS lists the member as inactive.
    pub removed: usize,
}

impl std::ops::AddAssign for Imported {
    fn add_assign(&mut self, o: Self) {
        self.members += o.members;
        self.enrolled += o.enrolled;
        self.unchanged += o.unchanged;
        self.removed += o.removed;
    }
}

/// Upserts learners and enrolments (source `lti`, active) for the active
/// `members`, in the caller's transaction, and ends the enrolment of each
/// inactive one (recorded as a roster removal). A revoked enrolment stays
/// revoked (as on a launch: staff revoked it on purpose), unless a roster
/// sync revoked it, then an active listing restores it.
pub fn import_members(
    tx: &mut Tx,
    now: DateTime<Utc>,
    resource_link_row_id: &str,
    members: &[RosterMember],
    actor: &Actor,
) -> Result<Imported, CoreError> {
    let (link, course) = mapped_link(tx, resource_link_row_id)?;
    let platform =
        repo::lti::get_platform(tx, &link.platform_id)?.ok_or(CoreError::NotFound("platform"))?;
    let mut out = Imported::default();
    for m in members {
        if m.sub.trim().is_empty() {
            continue;
        }
        if !m.active {
            out.removed += usize::from(remove_member(tx, now, &platform, &course.id, &m.sub)?);
            continue;
        }
        out.members += 1;
        let email = m.email.as_deref().filter(|e| !e.trim().is_empty());
        let name = m.name.as_deref().filter(|n| !n.trim().is_empty());
        let learner = learners::upsert_by_lti(
            tx,
            now,
            &platform.issuer,
            &platform.client_id,
            &m.sub,
            email,
            name,
        )?
        .learner;
        let existing = repo::enrolments::find(tx, &learner.id, &course.id)?;
        // Revoked by a roster sync (the removal is that very revocation, not
        // an older one staff re-granted and revoked again since).
        let removed_by_roster = match &existing {
            Some(e) if e.revoked_at.is_some() => repo::lti_services::get_roster_removal(tx, &e.id)?
                .is_some_and(|r| Some(r.removed_at) == e.revoked_at),
            _ => false,
        };
        if removed_by_roster {
            if let Some(e) = &existing {
                repo::lti_services::delete_roster_removal(tx, &e.id)?;
            }
        }
        match &existing {
            Some(e) if e.revoked_at.is_some() && !removed_by_roster => continue,
            Some(e) if e.status == "active" => out.unchanged += 1,
            _ => {
                enrolments::grant(
                    tx,
                    now,
                    Grant {
                        learner_id: learner.id.clone(),
                        course_id: course.id.clone(),
                        source: Source::Lti,
                        source_ref: Some(link.resource_link_id.clone()),
                        starts_at: None,
                        expires_at: None,
                    },
                )?;
                out.enrolled += 1;
            }
        }
        if let Some(e) = repo::enrolments::find(tx, &learner.id, &course.id)? {
            // Keep the link of an earlier launch (its line item); link the rest here.
            if repo::lti_services::get_enrolment_link(tx, &e.id)?.is_none() {
                ags::link_enrolment(tx, now, &e.id, &platform.id, &link.id, &m.sub, None)?;
            }
        }
    }
    audit::record(
        tx,
        now,
        actor,
        "lti.roster_import",
        Some(("lti_resource_link", &link.id)),
        json!({ "platform": platform.id, "course": course.slug, "members": out.members, "enrolled": out.enrolled, "removed": out.removed }),
    )?;
    Ok(out)
}

/// Ends the enrolment in `course_id` of the platform's member `sub` (the
/// LMS lists them inactive); true when one was ended now.
fn remove_member(
    tx: &mut Tx,
    now: DateTime<Utc>,
    platform: &coursegate_store::models::LtiPlatform,
    course_id: &str,
    sub: &str,
) -> Result<bool, CoreError> {
    let who = learners::IdentityRef::Lti {
        issuer: platform.issuer.clone(),
        client_id: platform.client_id.clone(),
        sub: sub.to_string(),
    };
    let Some(learner) = learners::resolve(tx, &who)? else {
        return Ok(false);
    };
    let Some(e) = repo::enrolments::find(tx, &learner.id, course_id)? else {
        return Ok(false);
    };
    // Only access the LMS gave: an enrolment bought, granted by staff or
    // sent by the API is not the LMS's to end.
    if e.revoked_at.is_some() || e.source != Source::Lti.as_str() {
        return Ok(false);
    }
    enrolments::revoke(tx, now, &e.id, Some("inactive in the LMS roster"))?;
    repo::lti_services::insert_roster_removal(
        tx,
        &coursegate_store::models::LtiRosterRemoval {
            enrolment_id: e.id,
            platform_id: platform.id.clone(),
            lti_sub: sub.to_string(),
            removed_at: now.naive_utc(),
        },
    )?;
    Ok(true)
}
