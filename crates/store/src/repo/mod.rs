//! Repositories: plain functions over `&mut DbConn`, called inside
//! `Store::read`/`Store::write`. No business rules here.

pub mod api;
pub mod audit;
pub mod console;
pub mod courses;
pub mod enrolments;
pub mod learners;
pub mod links;
pub mod lti;
pub mod lti_services;
pub mod meta;
pub mod outbox;
pub mod scopes;
pub mod sessions;
pub mod settings;
pub mod sso;
pub mod staff;
pub mod webhooks;

/// A page request for list queries (offset paging on stable sort keys).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: 50,
            offset: 0,
        }
    }
}
