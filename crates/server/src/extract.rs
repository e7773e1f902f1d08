//! Extractors: authentication is a type in the handler signature, never code
//! repeated in handler bodies.

use std::future::Future;
use std::pin::Pin;

use actix_web::{cookie::Cookie, dev::Payload, web, FromRequest, HttpRequest};
use coursegate_core::{
    sessions::{self, ClientInfo, Principal},
    CoreError,
};

use crate::{app::AppState, error::PageError};

pub const SESSION_COOKIE: &str = "cg_session";

/// Client address and user agent, for audit entries and session rows.
pub fn client_info(req: &HttpRequest) -> ClientInfo {
    ClientInfo {
        ip: req
            .connection_info()
            .realip_remote_addr()
            .map(str::to_string),
        user_agent: req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// The session cookie for a started session.
pub fn session_cookie(state: &AppState, token: &str) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token.to_string())
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(actix_web::cookie::SameSite::Lax)
        .finish()
}

/// A cookie that removes the session cookie.
pub fn clear_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = session_cookie(state, "");
    c.make_removal();
    c
}

async fn principal(req: &HttpRequest) -> Result<Principal, CoreError> {
    principal_from(req, SESSION_COOKIE).await
}

/// The staff member's read-only learner preview lives in its own cookie, so
/// it never replaces (or mixes with) the staff session.
/// The body of a form whose only field is its CSRF token (sign out, revoke…).
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub const PREVIEW_COOKIE: &str = "cg_preview";

async fn principal_from(req: &HttpRequest, cookie: &str) -> Result<Principal, CoreError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| CoreError::Internal("application state missing".into()))?
        .clone();
    // Inside an LMS frame without cookies the learner session travels in the path.
    let framed = (cookie == SESSION_COOKIE)
        .then(|| {
            actix_web::HttpMessage::extensions(req)
                .get::<crate::frame::FrameToken>()
                .map(|t| t.0.clone())
        })
        .flatten();
    let token = framed
        .or_else(|| req.cookie(cookie).map(|c| c.value().to_string()))
        .ok_or(CoreError::Unauthenticated)?;
    let now = state.clock.now();
    let secret = state.config.secret.clone();
    let p = state
        .store
        .read(move |tx| sessions::authenticate(tx, now, &secret, &token))
        .await?;
    if p.needs_touch {
        let id = p.session_id.clone();
        state
            .store
            .write(move |tx| sessions::touch(tx, now, &id))
            .await?;
    }
    Ok(p)
}

/// A signed-in learner (or a staff member's read-only preview as a learner).
#[derive(Debug, Clone)]
pub struct LearnerSession {
    pub session_id: String,
    pub learner_id: String,
    pub preview: bool,
}

impl LearnerSession {
    /// The CSRF token for forms on pages of this session.
    pub fn csrf(&self, state: &AppState) -> String {
        state.config.secret.csrf_token(&self.session_id)
    }

    /// Checks a submitted CSRF token.
    pub fn check_csrf(&self, state: &AppState, token: &str) -> Result<(), PageError> {
        if state.config.secret.verify_csrf(&self.session_id, token) {
            Ok(())
        } else {
            Err(PageError::csrf())
        }
    }
}

impl FromRequest for LearnerSession {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if req.cookie(PREVIEW_COOKIE).is_some() {
                if let Ok(p) = principal_from(&req, PREVIEW_COOKIE).await {
                    if let ("preview", Some(l)) = (p.kind.as_str(), p.learner_id) {
                        return Ok(LearnerSession {
                            session_id: p.session_id,
                            learner_id: l,
                            preview: true,
                        });
                    }
                }
            }
            let p = principal(&req).await?;
            match (p.kind.as_str(), p.learner_id) {
                ("learner", Some(l)) => Ok(LearnerSession {
                    session_id: p.session_id,
                    learner_id: l,
                    preview: false,
                }),
                ("preview", Some(l)) => Ok(LearnerSession {
                    session_id: p.session_id,
                    learner_id: l,
                    preview: true,
                }),
                _ => Err(CoreError::Unauthenticated.into()),
            }
        })
    }
}

/// An optional learner session (pages that work signed in or out).
#[derive(Debug, Clone)]
pub struct MaybeLearner(pub Option<LearnerSession>);

impl FromRequest for MaybeLearner {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = LearnerSession::from_request(req, payload);
        Box::pin(async move {
            match fut.await {
                Ok(s) => Ok(MaybeLearner(Some(s))),
                Err(e) if e.status == actix_web::http::StatusCode::UNAUTHORIZED => {
                    Ok(MaybeLearner(None))
                }
                Err(e) => Err(e),
            }
        })
    }
}

/// A signed-in staff member, with their role.
#[derive(Debug, Clone)]
pub struct StaffSession {
    pub session_id: String,
    pub staff_id: String,
    pub email: String,
    pub role: String,
    /// The courses this staff member may see (an instructor's assignments).
    pub scope: coursegate_core::scope::Scope,
    /// IP and user agent of this request, for audit entries.
    pub client: ClientInfo,
}

impl StaffSession {
    /// This staff member as the actor of an audit entry (with IP and user agent).
    pub fn actor(&self) -> coursegate_core::audit::Actor {
        coursegate_core::audit::Actor {
            kind: "staff",
            id: Some(self.staff_id.clone()),
            ip: self.client.ip.clone(),
            user_agent: self.client.user_agent.clone(),
        }
    }

    pub fn csrf(&self, state: &AppState) -> String {
        state.config.secret.csrf_token(&self.session_id)
    }

    pub fn check_csrf(&self, state: &AppState, token: &str) -> Result<(), PageError> {
        if state.config.secret.verify_csrf(&self.session_id, token) {
            Ok(())
        } else {
            Err(PageError::csrf())
        }
    }

    /// Refuses unless the role is one of `roles`.
    pub fn require(&self, roles: &[&str]) -> Result<(), PageError> {
        if roles.contains(&self.role.as_str()) {
            Ok(())
        } else {
            Err(PageError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!("Your role ({}) does not allow this.", self.role),
            ))
        }
    }

    /// Refuses unless the role is one of `roles`, naming what was refused:
    /// "Your role (support) cannot change site settings."
    pub fn require_to(&self, roles: &[&str], what: &str) -> Result<(), PageError> {
        if roles.contains(&self.role.as_str()) {
            Ok(())
        } else {
            Err(PageError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!("Your role ({}) cannot {what}.", self.role),
            ))
        }
    }
}

impl FromRequest for StaffSession {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let p = principal(&req).await?;
            let (Some(staff_id), "staff") = (p.staff_id.clone(), p.kind.as_str()) else {
                return Err(CoreError::Unauthenticated.into());
            };
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| {
                    PageError::from(CoreError::Internal("application state missing".into()))
                })?
                .clone();
            let sid = staff_id.clone();
            let (staff, scope) = state
                .store
                .read(move |tx| {
                    let s = coursegate_store::repo::staff::get(tx, &sid)?
                        .ok_or(CoreError::Unauthenticated)?;
                    let scope = coursegate_core::scope::Scope::load(tx, &s.id, &s.role)?;
                    Ok::<_, CoreError>((s, scope))
                })
                .await?;
            if !staff.active {
                return Err(CoreError::Unauthenticated.into());
            }
            Ok(StaffSession {
                session_id: p.session_id,
                staff_id,
                email: staff.email,
                role: staff.role,
                scope,
                client: client_info(&req),
            })
        })
    }
}
