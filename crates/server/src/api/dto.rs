//! Request and response bodies of `/api/v1`, with their OpenAPI schemas.
//! Requests refuse unknown fields; every created object carries its `id`.

use chrono::{DateTime, Utc};
use coursegate_core::{
    access::utc,
    api_views::{ApiLink, EnrolmentView},
    links::LinkStatus,
    webhooks as core_webhooks,
};
use coursegate_store::models::{
    Course as CourseRow, Learner as LearnerRow, Lesson, WebhookDelivery, WebhookEndpoint,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// An RFC 9457 problem.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `https://coursegate.dev/problems/<code>`
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine code, e.g. `course_not_found`, `unknown_field`.
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// With `insufficient_scope`: the scope the key lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_scope: Option<String>,
    /// With `rate_limited`: seconds until the budget refills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `send_link.kind`.
    pub field: String,
    pub message: String,
}

/// `POST /api/v1/learners`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnerIn {
    /// The learner's email address (the upsert key).
    #[schema(example = "ann@example.com")]
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Your system's id for this person (unique across learners).
    #[serde(default)]
    pub external_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Learner {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&LearnerRow> for Learner {
    fn from(l: &LearnerRow) -> Self {
        Self {
            id: l.id.clone(),
            email: l.email.clone(),
            name: l.name.clone(),
            external_id: l.external_id.clone(),
            created_at: utc(l.created_at),
            updated_at: utc(l.updated_at),
        }
    }
}

/// A learner with every enrolment and its progress.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LearnerDetail {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub enrolments: Vec<Enrolment>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LearnerPage {
    pub data: Vec<Learner>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Kind of link to send.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Reusable course-access link (until it expires or is regenerated).
    Access,
    /// One-time sign-in link.
    Once,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendLinkIn {
    pub kind: LinkKind,
    /// Language of the email, e.g. `en` (only `en` templates exist so far; other values fall back to it).
    #[serde(default)]
    pub locale: Option<String>,
}

/// `POST /api/v1/enrolments`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentIn {
    #[schema(example = "ann@example.com")]
    pub email: String,
    /// Course slug.
    #[schema(example = "first-aid")]
    pub course: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Start of access (RFC 3339); default now.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// End of access, exclusive (RFC 3339); default the course's access period, else none.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Your reference, e.g. an order number.
    #[serde(default)]
    pub reference: Option<String>,
    /// Also email the learner a link.
    #[serde(default)]
    pub send_link: Option<SendLinkIn>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    pub completed_lessons: usize,
    pub required_lessons: usize,
    pub percent: u32,
    pub completed: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Enrolment {
    pub id: String,
    pub learner_id: String,
    /// Course slug.
    pub course: String,
    /// `active`, `scheduled` (starts later), `expired` or `revoked`.
    pub status: String,
    /// Where it came from: api, staff, lti, link, csv, cli, demo.
    pub source: String,
    pub reference: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub progress: Progress,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// With `send_link`: the link that was queued for sending (`url` only
    /// for keys created with `allow_link_urls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
}

impl From<&EnrolmentView> for Enrolment {
    fn from(v: &EnrolmentView) -> Self {
        let e = &v.enrolment;
        Self {
            id: e.id.clone(),
            learner_id: e.learner_id.clone(),
            course: v.course_slug.clone(),
            status: v.status.to_string(),
            source: e.source.clone(),
            reference: e.source_ref.clone(),
            starts_at: e.starts_at.map(utc),
            expires_at: e.expires_at.map(utc),
            revoked_at: e.revoked_at.map(utc),
            started_at: e.started_at.map(utc),
            completed_at: e.completed_at.map(utc),
            progress: Progress {
                completed_lessons: v.progress.completed_required,
                required_lessons: v.progress.required,
                percent: v.progress.percent,
                completed: v.progress.completed,
            },
            created_at: utc(e.created_at),
            updated_at: utc(e.updated_at),
            link: None,
        }
    }
}

/// `POST /api/v1/enrolments/{id}/revoke`
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeIn {
    /// Why (kept in the event), e.g. `refund`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/enrolments/{id}/extend`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendIn {
    /// New end of access (RFC 3339), or null for no end. Required.
    #[serde(deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>, required = true)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// Distinguishes `"expires_at": null` (Some(None)) from a missing field (None).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LessonOut {
    pub id: String,
    pub position: i32,
    pub title: String,
    pub required: bool,
}

impl From<&Lesson> for LessonOut {
    fn from(l: &Lesson) -> Self {
        Self {
            id: l.id.clone(),
            position: l.position,
            title: l.title.clone(),
            required: l.required,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Course {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub published: bool,
    /// Default link kind: `access` or `once`.
    pub link_policy: String,
    pub default_access_days: Option<i32>,
    pub lesson_count: usize,
}

impl Course {
    pub fn of(c: &CourseRow, lesson_count: usize) -> Self {
        Self {
            id: c.id.clone(),
            slug: c.slug.clone(),
            title: c.title.clone(),
            summary: c.summary.clone(),
            published: c.published,
            link_policy: c.link_policy.clone(),
            default_access_days: c.default_access_days,
            lesson_count,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CourseDetail {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub published: bool,
    pub link_policy: String,
    pub default_access_days: Option<i32>,
    pub lessons: Vec<LessonOut>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CourseList {
    pub data: Vec<Course>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrolmentPage {
    pub data: Vec<Enrolment>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/webhooks`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    #[schema(example = "https://crm.example.com/hooks/coursegate")]
    pub url: String,
    /// Event types, or `["*"]` for all.
    #[schema(example = json!(["enrolment.created", "course.completed"]))]
    pub events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    /// `active` or `disabled` (after repeated failures; see `disabled_reason`).
    pub status: String,
    pub disabled_reason: Option<String>,
    /// While set, deliveries also carry a signature made with the previous secret.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&WebhookEndpoint> for Webhook {
    fn from(e: &WebhookEndpoint) -> Self {
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            description: e.description.clone(),
            events: core_webhooks::events_of(e),
            status: e.status.clone(),
            disabled_reason: e.disabled_reason.clone(),
            previous_secret_expires_at: e.previous_secret_expires_at.map(utc),
            created_at: utc(e.created_at),
            updated_at: utc(e.updated_at),
        }
    }
}

/// A webhook with its signing secret, returned once (on creation and rotation).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookWithSecret {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub status: String,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// `whsec_` + base64 key (Standard Webhooks). Shown only in this response.
    pub secret: String,
}

impl WebhookWithSecret {
    pub fn of(e: &WebhookEndpoint, secret: &str) -> Self {
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            description: e.description.clone(),
            events: core_webhooks::events_of(e),
            status: e.status.clone(),
            previous_secret_expires_at: e.previous_secret_expires_at.map(utc),
            created_at: utc(e.created_at),
            secret: secret.to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<Webhook>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: String,
    /// The `webhook-id` header (the same on every retry).
    pub event_id: String,
    pub event_type: String,
    pub attempt: i32,
    /// `succeeded` or `failed`.
    pub outcome: String,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub created_at: DateTime<Utc>,
}

impl From<&WebhookDelivery> for Delivery {
    fn from(d: &WebhookDelivery) -> Self {
        Self {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            attempt: d.attempt,
            outcome: d.outcome.clone(),
            response_status: d.response_status,
            error: d.error.clone(),
            duration_ms: d.duration_ms,
            created_at: utc(d.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub data: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    pub delivery_id: String,
    pub event_id: String,
    /// `pending`: queued for another attempt.
    pub status: String,
}

/// `POST /api/v1/links`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkIn {
    /// The learner's email address (the learner must be enrolled in the course).
    #[schema(example = "ann@example.com")]
    pub email: String,
    /// Course slug.
    #[schema(example = "first-aid")]
    pub course: String,
    /// Default: the course's link policy.
    #[serde(default)]
    pub kind: Option<LinkKind>,
    /// Email it to the learner (default true). `false` is only allowed for
    /// keys created with `allow_link_urls`, which get the `url` back.
    #[serde(default)]
    pub send: Option<bool>,
}

/// A learner link and its status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Link {
    pub id: String,
    pub learner_id: String,
    /// Course slug.
    pub course: Option<String>,
    /// `access` (reusable until it expires) or `once` (one-time sign-in).
    pub kind: String,
    /// `issued`, `sent`, `opened`, `opened_by_scanner`, `redeemed`, `expired`, `superseded`, `revoked` or `used`.
    pub status: String,
    /// The link itself: only in the response to `POST /api/v1/links`, and only
    /// for keys created with `allow_link_urls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the email carrying it was accepted by the mail server.
    pub sent_at: Option<DateTime<Utc>>,
    pub opened_count: i32,
    pub redeem_count: i32,
}

impl Link {
    pub fn from_status(s: &LinkStatus, learner_id: &str, url: Option<String>) -> Self {
        Self {
            id: s.id.clone(),
            learner_id: learner_id.to_string(),
            course: s.course.clone(),
            kind: s.kind.clone(),
            status: s.status.to_string(),
            url,
            created_at: s.created_at,
            expires_at: s.expires_at,
            sent_at: s.sent_at,
            opened_count: s.opened_count,
            redeem_count: s.redeem_count,
        }
    }

    pub fn of(l: &ApiLink) -> Self {
        Self::from_status(&l.status, &l.learner_id, l.url.clone())
    }
}

/// The body of every webhook delivery (Standard Webhooks headers
/// `webhook-id`, `webhook-timestamp`, `webhook-signature` carry the signature).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookEvent {
    /// Event id; equals the `webhook-id` header and is stable across retries.
    pub id: String,
    /// e.g. `enrolment.created`, `course.completed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Payload version (1).
    pub version: i32,
    /// When it happened (RFC 3339).
    pub timestamp: String,
    /// Event data: `enrolment_id`, `learner_id`, `course`, `learner` {id, email, name, external_id}, and per type e.g. `lesson_id`, `progress_percent`, `reason`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}
