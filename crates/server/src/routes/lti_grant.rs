//! Pages an instructor launch opens for one resource link: the instructor
//! view and the course picker. The launch's session gets a key for that
//! link (`?k=`, a keyed hash of session and link), so only that session can
//! open the page; a frame session or a new-window handoff starts a new
//! session and the key is derived again for it.

use crate::app::AppState;

/// One kind of page a launch grants for a resource link.
pub struct LinkGrant {
    /// Domain separation of the key.
    purpose: &'static str,
    /// The page's path before the link id, with its trailing slash.
    prefix: &'static str,
}

/// `/lti/instructor/{link}`: the course and the learners' progress.
pub const INSTRUCTOR_VIEW: LinkGrant = LinkGrant {
    purpose: "lti-instructor",
    prefix: "/lti/instructor/",
};

/// `/lti/unmapped/{link}`: connect an unmapped link to a course.
pub const COURSE_PICKER: LinkGrant = LinkGrant {
    purpose: "lti-course-picker",
    prefix: "/lti/unmapped/",
};

impl LinkGrant {
    fn key(&self, state: &AppState, session_id: &str, link: &str) -> String {
        state
            .config
            .secret
            .hash(self.purpose, &format!("{session_id}\n{link}"))
    }

    /// Where the launch of `link` in session `session_id` goes.
    pub fn path(&self, state: &AppState, session_id: &str, link: &str) -> String {
        format!(
            "{}{link}?k={}",
            self.prefix,
            self.key(state, session_id, link)
        )
    }

    /// Whether `k` is this page's key for `link` in session `session_id`.
    pub fn holds(&self, state: &AppState, session_id: &str, link: &str, k: &str) -> bool {
        coursegate_core::tokens::ct_eq(&self.key(state, session_id, link), k)
    }

    /// The same page for the session that continues the launch, when `to`
    /// is this page with a key of `launch_session_id`.
    pub fn moved(
        &self,
        state: &AppState,
        to: &str,
        launch_session_id: &str,
        session_id: &str,
    ) -> Option<String> {
        let (path, query) = to.split_once('?').unwrap_or((to, ""));
        let link = path.strip_prefix(self.prefix)?;
        let k = query.strip_prefix("k=").unwrap_or("");
        self.holds(state, launch_session_id, link, k)
            .then(|| self.path(state, session_id, link))
    }
}
