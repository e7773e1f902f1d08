//! Names and Role Provisioning Services 2.0: memberships with paging.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{link_rel, ServiceClient};
use crate::claims::Role;
use crate::error::LtiError;

pub const MEDIA_MEMBERSHIP_CONTAINER: &str =
    "application/vnd.ims.lti-nrps.v2.membershipcontainer+json";
/// Stop following `next` links after this many pages (Canvas pages hold 50).
pub const MAX_PAGES: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipContext {
    pub id: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

/// One member of a context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// `Active`, `Inactive` or `Deleted` (absent means Active).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub picture: Option<String>,
    #[serde(default)]
    pub lis_person_sourcedid: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Member {
    pub fn is_active(&self) -> bool {
        self.status
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("active"))
    }
    /// Understands short names ("Learner") and full URIs.
    pub fn is_learner(&self) -> bool {
        self.roles.iter().any(|r| Role::parse(r).is_learner())
    }
    pub fn is_instructor(&self) -> bool {
        self.roles.iter().any(|r| Role::parse(r).is_instructor())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MembershipContainer {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub context: Option<MembershipContext>,
    #[serde(default)]
    pub members: Vec<Member>,
}

/// One page and its links.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipPage {
    pub container: MembershipContainer,
    pub next: Option<String>,
    pub differences: Option<String>,
}

/// All pages together.
#[derive(Debug, Clone, PartialEq)]
pub struct Memberships {
    pub context: Option<MembershipContext>,
    pub members: Vec<Member>,
    /// The `differences` link of the last page, for the next sync.
    pub differences: Option<String>,
    pub pages: usize,
}

impl ServiceClient {
    /// Fetches one page of `context_memberships_url` (or a `next`/`differences` link).
    pub async fn memberships_page(
        &self,
        token: &str,
        url: &str,
    ) -> Result<MembershipPage, LtiError> {
        let req = self
            .http()
            .get(url)
            .header(reqwest::header::ACCEPT, MEDIA_MEMBERSHIP_CONTAINER);
        let resp = self.send(req, url, token).await?;
        let next = link_rel(&resp, "next");
        let differences = link_rel(&resp, "differences");
        let container = Self::json(resp, url).await?;
        Ok(MembershipPage {
            container,
            next,
            differences,
        })
    }

    /// Fetches every page, following `Link: <…>; rel="next"`.
    pub async fn memberships(&self, token: &str, url: &str) -> Result<Memberships, LtiError> {
        let mut out = Memberships {
            context: None,
            members: Vec::new(),
            differences: None,
            pages: 0,
        };
        let mut url = Some(url.to_string());
        while let Some(u) = url.take() {
            let page = self.memberships_page(token, &u).await?;
            out.pages += 1;
            if out.context.is_none() {
                out.context = page.container.context;
            }
            out.members.extend(page.container.members);
            if page.differences.is_some() {
                out.differences = page.differences;
            }
            if out.pages < MAX_PAGES && page.next.as_deref() != Some(u.as_str()) {
                url = page.next;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::test_server::{Reply, TestServer};

    #[tokio::test]
    async fn follows_next_links() {
        let page1 = r#"{"id":"m","context":{"id":"ctx","title":"CS"},"members":[{"user_id":"1","roles":["Learner"]},{"user_id":"2","roles":["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"],"status":"Active"}]}"#;
        let page2 =
            r#"{"id":"m","members":[{"user_id":"3","roles":["Learner"],"status":"Inactive"}]}"#;
        // Start a server whose first reply points to its second page.
        let s = TestServer::start_with(|base| {
            vec![
                Reply::json(200, page1).header(
                    "link",
                    &format!(
                        "<{base}/m?page=2>; rel=\"next\", <{base}/m?since=9>; rel=\"differences\""
                    ),
                ),
                Reply::json(200, page2),
            ]
        })
        .await;
        let c = ServiceClient::new("ua").unwrap();
        let m = c.memberships("tok", &s.url("/m")).await.unwrap();
        assert_eq!(m.pages, 2);
        assert_eq!(m.members.len(), 3);
        assert_eq!(m.context.unwrap().id, "ctx");
        assert!(m.members[0].is_learner());
        assert!(m.members[1].is_instructor());
        assert!(!m.members[2].is_active());
        assert!(m.differences.unwrap().ends_with("/m?since=9"));
        let r = s.requests();
        assert_eq!(r[1].path, "/m?page=2");
        assert_eq!(
            r[0].header("accept").as_deref(),
            Some(MEDIA_MEMBERSHIP_CONTAINER)
        );
        assert_eq!(r[0].header("authorization").as_deref(), Some("Bearer tok"));
    }
}
