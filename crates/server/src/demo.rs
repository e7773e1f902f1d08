//! `coursegate demo`: demo courses with real lessons, a demo learner and a
//! demo staff user. Idempotent: running it again reuses what exists.

use chrono::{DateTime, Utc};
use coursegate_core::{
    audit::Actor,
    courses::{self, LinkPolicy, NewCourse, NewLesson},
    enrolments::{self, Grant, Source},
    learners,
    links::{self, IssueLearner},
    sessions::Destination,
    settings,
    staff::{self, Role},
    types::{Email, Slug},
    CoreError, Store,
};

use crate::config::Config;

pub struct DemoUrls {
    pub learner: String,
    pub staff: String,
}

const SAFETY: [&str; 3] = [
    "# Why workplace safety matters\n\nMost workplace injuries are preventable. In this short course you will learn to **spot hazards**, **report them** and **act** when something goes wrong.\n\n- Slips, trips and falls cause about a third of all reported injuries.\n- Near misses are free lessons: report them.\n- Everyone has the right to stop work that is unsafe.\n",
    "# Spotting hazards\n\nWalk your area with fresh eyes. Look for:\n\n1. Trailing cables and cluttered walkways\n2. Spills and wet floors\n3. Blocked fire exits and extinguishers\n4. Poor lighting on stairs\n\n> Tip: take a photo and attach it to your report. It saves everyone time.\n",
    "# Reporting and responding\n\nUse the incident form on the intranet within 24 hours. Include **what** happened, **where**, **when** and **who** was involved.\n\nIn an emergency: make the area safe if you can, call for help, and do not move an injured person unless they are in danger.\n",
];

const GDPR: [&str; 2] = [
    "# Personal data in daily work\n\nPersonal data is any information about an identifiable person: names, email addresses, order histories, even IP addresses.\n\nAsk yourself before sharing: *does the recipient need this to do their job?*\n",
    "# When something goes wrong\n\nSent an email to the wrong person? Lost a laptop? Report it to your data protection contact **immediately**: breaches must be assessed within 72 hours.\n",
];

const ONBOARDING: [&str; 2] = [
    "# Welcome aboard\n\nThis course walks you through your first week: tools, people and the way we work.\n",
    "# Your first week\n\n| Day | What happens |\n|---|---|\n| Monday | Accounts, laptop, buddy lunch |\n| Wednesday | Team introductions |\n| Friday | First retrospective |\n",
];

fn lessons(bodies: &[&str]) -> Vec<NewLesson> {
    bodies
        .iter()
        .enumerate()
        .map(|(i, b)| NewLesson::from_markdown(b, &format!("Lesson {}", i + 1)))
        .collect()
}

pub fn seed(store: &Store, config: &Config, now: DateTime<Utc>) -> anyhow::Result<DemoUrls> {
    let secret = config.secret.clone();
    let settings = config.links;
    let (learner_token, staff_token) = store
        .write_blocking(|tx| {
            let demo = [
                (
                    "workplace-safety",
                    "Workplace Safety Essentials",
                    "Spot hazards, report them and respond well: 15 minutes.",
                    &SAFETY[..],
                    true,
                ),
                (
                    "data-protection",
                    "Data Protection Basics",
                    "Handle personal data with care in everyday work.",
                    &GDPR[..],
                    false,
                ),
                (
                    "onboarding",
                    "New Starter Onboarding",
                    "Everything you need in your first week.",
                    &ONBOARDING[..],
                    false,
                ),
            ];
            let mut ids = Vec::new();
            for (slug, title, summary, bodies, graded) in demo {
                let c = match coursegate_store::repo::courses::get_by_slug(tx, slug)? {
                    Some(c) => c,
                    None => {
                        courses::create(
                            tx,
                            now,
                            NewCourse {
                                slug: Slug::parse(slug)?,
                                title: title.into(),
                                summary: summary.into(),
                                published: true,
                                graded,
                                link_policy: LinkPolicy::Access,
                                default_access_days: None,
                                lessons: lessons(bodies),
                            },
                        )?
                        .0
                    }
                };
                ids.push(c.id);
            }
            let mut site = settings::site(tx)?;
            if site.name == "Coursegate" {
                site.name = "Coursegate Demo Academy".into();
                site.support_email = "help@example.com".into();
                settings::save_site(tx, now, &site)?;
            }
            let email = Email::parse("demo@example.com")?;
            let learner =
                learners::upsert_by_email(tx, now, &email, Some("Dana Demo"), None, false)?.learner;
            for course_id in ids.iter().take(2) {
                if coursegate_store::repo::enrolments::find(tx, &learner.id, course_id)?.is_none() {
                    enrolments::grant(
                        tx,
                        now,
                        Grant {
                            learner_id: learner.id.clone(),
                            course_id: course_id.clone(),
                            source: Source::Demo,
                            source_ref: None,
                            starts_at: None,
                            expires_at: None,
                        },
                    )?;
                }
            }
            let (staff_user, _) = staff::ensure(
                tx,
                now,
                &Email::parse("staff@example.com")?,
                Some("Sam Staff"),
                Role::Owner,
            )?;
            let l = links::issue_learner(
                tx,
                now,
                &secret,
                &settings,
                &Actor::cli(),
                IssueLearner {
                    learner_id: learner.id,
                    destination: Destination::Course {
                        slug: "workplace-safety".into(),
                    },
                    kind: Some(LinkPolicy::Access),
                    send: None,
                },
            )?;
            let s = links::issue_staff(
                tx,
                now,
                &secret,
                &settings,
                &Actor::cli(),
                &staff_user.id,
                None,
            )?;
            Ok::<_, CoreError>((l.path(), s.path()))
        })
        .map_err(|e| anyhow::anyhow!("demo data: {e}"))?;
    Ok(DemoUrls {
        learner: config.url(&learner_token),
        staff: config.url(&staff_token),
    })
}
