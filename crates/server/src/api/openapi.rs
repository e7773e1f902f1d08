//! The OpenAPI 3.1 document, generated from the handlers and DTOs.

use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use super::{courses, dto, enrolments, learners, links, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Coursegate API",
        version = "1",
        description = "Enrol learners from your webshop, CRM or HR system, and hear back through signed webhooks.\n\nAuthenticate with `Authorization: Bearer cgk_…` (create keys with `coursegate apikey create`). Every write accepts `Idempotency-Key`. Errors are RFC 9457 `application/problem+json` with a stable `code`; the problem `type` is `https://coursegate.dev/problems/<code>`. Each key has a per-minute budget; over it the answer is 429 with `Retry-After`."
    ),
    paths(
        learners::upsert, learners::list, learners::get,
        enrolments::create, enrolments::list, enrolments::get, enrolments::revoke, enrolments::extend,
        courses::list, courses::get,
        links::create, links::get,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete,
        webhooks::rotate, webhooks::enable, webhooks::deliveries, webhooks::replay,
    ),
    components(schemas(
        dto::Problem, dto::FieldError,
        dto::LearnerIn, dto::Learner, dto::LearnerDetail, dto::LearnerPage,
        dto::EnrolmentIn, dto::SendLinkIn, dto::LinkKind, dto::Enrolment, dto::Progress,
        dto::RevokeIn, dto::ExtendIn,
        dto::Course, dto::CourseDetail, dto::CourseList, dto::LessonOut,
        dto::WebhookIn, dto::Webhook, dto::WebhookWithSecret, dto::WebhookList,
        dto::Delivery, dto::DeliveryPage, dto::Replayed, dto::WebhookEvent,
        dto::LinkIn, dto::Link, dto::EnrolmentPage,
    )),
    modifiers(&Security),
    tags(
        (name = "learners", description = "People who take courses"),
        (name = "enrolments", description = "Access of a learner to a course"),
        (name = "courses", description = "What can be enrolled in"),
        (name = "links", description = "Sign-in and course-access links for enrolled learners"),
        (name = "webhooks", description = "Signed event deliveries (Standard Webhooks)"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cgk_…")
                    .description(Some(
                        "An API key. Scopes: read, learners:write, enrolments:write, links:write, webhooks:write.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(serde_json::Value::Null)
}
