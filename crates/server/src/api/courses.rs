//! `/api/v1/courses`

use actix_web::{http::StatusCode, web, HttpResponse};
use coursegate_core::{api_keys::Scope, api_views};

use super::{
    dto,
    learners::{page_limit, PageQuery},
    read, ApiCaller,
};
use crate::{app::AppState, error::ApiError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/courses").route(web::get().to(list)))
        .service(web::resource("/courses/{slug}").route(web::get().to(get)));
}

/// List every course (published or not) in slug order, with cursor pagination.
#[utoipa::path(
    get, path = "/api/v1/courses", tag = "courses",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of courses", body = dto::CourseList),
        (status = 422, description = "Bad cursor or limit", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: ApiCaller,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let q = q.into_inner();
    let limit = page_limit(q.limit)?;
    let (rows, next) = read(&state, move |tx, _| {
        api_views::courses_page(tx, q.cursor.as_deref(), limit)
    })
    .await?;
    Ok(super::json(
        StatusCode::OK,
        &dto::CourseList {
            data: rows.iter().map(|(c, n)| dto::Course::of(c, *n)).collect(),
            next_cursor: next,
        },
    ))
}

/// A course and its lessons.
#[utoipa::path(
    get, path = "/api/v1/courses/{slug}", tag = "courses",
    params(("slug" = String, Path, description = "Course slug")),
    responses(
        (status = 200, description = "The course", body = dto::CourseDetail),
        (status = 404, description = "No such course", body = dto::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["read"]))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: ApiCaller,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let slug = slug.into_inner();
    let (c, lessons) = read(&state, move |tx, _| api_views::course(tx, &slug)).await?;
    Ok(super::json(
        StatusCode::OK,
        &dto::CourseDetail {
            id: c.id.clone(),
            slug: c.slug.clone(),
            title: c.title.clone(),
            summary: c.summary.clone(),
            published: c.published,
            link_policy: c.link_policy.clone(),
            default_access_days: c.default_access_days,
            lessons: lessons.iter().map(dto::LessonOut::from).collect(),
        },
    ))
}
