//! Typed LTI 1.3 launch claims and role helpers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Claim names (the full URIs LTI 1.3 uses as JSON keys).
pub mod names {
    pub const MESSAGE_TYPE: &str = "https://purl.imsglobal.org/spec/lti/claim/message_type";
    pub const VERSION: &str = "https://purl.imsglobal.org/spec/lti/claim/version";
    pub const DEPLOYMENT_ID: &str = "https://purl.imsglobal.org/spec/lti/claim/deployment_id";
    pub const TARGET_LINK_URI: &str = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri";
    pub const RESOURCE_LINK: &str = "https://purl.imsglobal.org/spec/lti/claim/resource_link";
    pub const ROLES: &str = "https://purl.imsglobal.org/spec/lti/claim/roles";
    pub const ROLE_SCOPE_MENTOR: &str =
        "https://purl.imsglobal.org/spec/lti/claim/role_scope_mentor";
    pub const CONTEXT: &str = "https://purl.imsglobal.org/spec/lti/claim/context";
    pub const TOOL_PLATFORM: &str = "https://purl.imsglobal.org/spec/lti/claim/tool_platform";
    pub const LAUNCH_PRESENTATION: &str =
        "https://purl.imsglobal.org/spec/lti/claim/launch_presentation";
    pub const CUSTOM: &str = "https://purl.imsglobal.org/spec/lti/claim/custom";
    pub const LIS: &str = "https://purl.imsglobal.org/spec/lti/claim/lis";
    pub const FOR_USER: &str = "https://purl.imsglobal.org/spec/lti/claim/for_user";
    pub const DEEP_LINKING_SETTINGS: &str =
        "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings";
    pub const DL_CONTENT_ITEMS: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items";
    pub const DL_DATA: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/data";
    pub const DL_MSG: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/msg";
    pub const DL_LOG: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/log";
    pub const DL_ERRORMSG: &str = "https://purl.imsglobal.org/spec/lti-dl/claim/errormsg";
    pub const AGS_ENDPOINT: &str = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint";
    pub const NRPS: &str = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice";
    /// Client-side postMessage platform storage (LTI PM-S): the target frame.
    pub const PLATFORM_STORAGE: &str =
        "https://purl.imsglobal.org/spec/lti/claim/lti1p3_platform_storage";
    /// Some platforms put the storage target under this plain key.
    pub const LTI_STORAGE_TARGET: &str = "lti_storage_target";
}

/// OAuth2 scopes of the LTI Advantage services.
pub mod scopes {
    pub const AGS_LINEITEM: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";
    pub const AGS_LINEITEM_READONLY: &str =
        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly";
    pub const AGS_RESULT_READONLY: &str =
        "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly";
    pub const AGS_SCORE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
    pub const NRPS_MEMBERSHIP_READONLY: &str =
        "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";
}

/// The LTI version this crate speaks.
pub const LTI_VERSION: &str = "1.3.0";

/// Which LTI message a launch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageType {
    #[serde(rename = "LtiResourceLinkRequest")]
    ResourceLink,
    #[serde(rename = "LtiDeepLinkingRequest")]
    DeepLinking,
    #[serde(rename = "LtiSubmissionReviewRequest")]
    SubmissionReview,
}

impl MessageType {
    pub fn parse(s: &str) -> Option<MessageType> {
        match s {
            "LtiResourceLinkRequest" => Some(MessageType::ResourceLink),
            "LtiDeepLinkingRequest" => Some(MessageType::DeepLinking),
            "LtiSubmissionReviewRequest" => Some(MessageType::SubmissionReview),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::ResourceLink => "LtiResourceLinkRequest",
            MessageType::DeepLinking => "LtiDeepLinkingRequest",
            MessageType::SubmissionReview => "LtiSubmissionReviewRequest",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLink {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPresentation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPlatform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_family_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepLinkingSettings {
    pub deep_link_return_url: String,
    #[serde(default)]
    pub accept_types: Vec<String>,
    #[serde(default)]
    pub accept_presentation_document_targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_media_types: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_multiple: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_lineitem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Opaque value the tool must echo in its response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl DeepLinkingSettings {
    /// Whether the platform accepts several items (absent means yes for most LMSs,
    /// but the spec's default is false).
    pub fn accepts_multiple(&self) -> bool {
        self.accept_multiple.unwrap_or(false)
    }

    /// Whether `ltiResourceLink` items are accepted (an empty list accepts any).
    pub fn accepts_resource_links(&self) -> bool {
        self.accept_types.is_empty() || self.accept_types.iter().any(|t| t == "ltiResourceLink")
    }
}

/// `https://purl.imsglobal.org/spec/lti-ags/claim/endpoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgsEndpoint {
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineitems: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineitem: Option<String>,
}

impl AgsEndpoint {
    pub fn can_post_scores(&self) -> bool {
        self.scope.iter().any(|s| s == scopes::AGS_SCORE)
    }
    pub fn can_manage_line_items(&self) -> bool {
        self.scope.iter().any(|s| s == scopes::AGS_LINEITEM)
    }
}

/// `https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NrpsClaim {
    pub context_memberships_url: String,
    #[serde(default)]
    pub service_versions: Vec<String>,
}

/// The verified facts of one launch. Built only by [`crate::token::verify_launch`].
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchClaims {
    pub issuer: String,
    /// Our client_id (the audience the token was checked against).
    pub client_id: String,
    pub message_type: MessageType,
    pub version: String,
    pub deployment_id: String,
    pub nonce: String,
    pub iat: i64,
    pub exp: i64,
    /// The platform's user id; `None` only for anonymous launches when allowed.
    pub sub: Option<String>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub middle_name: Option<String>,
    pub email: Option<String>,
    pub picture: Option<String>,
    pub locale: Option<String>,
    pub roles: Vec<String>,
    pub role_scope_mentor: Vec<String>,
    pub context: Option<Context>,
    pub resource_link: Option<ResourceLink>,
    pub target_link_uri: Option<String>,
    pub custom: BTreeMap<String, String>,
    pub launch_presentation: Option<LaunchPresentation>,
    pub tool_platform: Option<ToolPlatform>,
    pub deep_linking_settings: Option<DeepLinkingSettings>,
    pub ags: Option<AgsEndpoint>,
    pub nrps: Option<NrpsClaim>,
    /// The platform storage target frame when the platform offers postMessage storage.
    pub lti_storage_target: Option<String>,
    /// For submission review launches: the user whose submission is reviewed.
    pub for_user: Option<Value>,
    /// The whole verified payload.
    pub raw: Value,
}

impl LaunchClaims {
    pub fn is_instructor(&self) -> bool {
        roles_include_instructor(&self.roles)
    }
    pub fn is_learner(&self) -> bool {
        roles_include_learner(&self.roles)
    }
    pub fn is_teaching_assistant(&self) -> bool {
        self.roles
            .iter()
            .any(|r| Role::parse(r).is_teaching_assistant())
    }
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| Role::parse(r).is_admin())
    }
    /// An Instructor, ContentDeveloper or Administrator of the launch's own
    /// context (a membership role, not an institution or system role, and
    /// not a teaching assistant).
    pub fn is_context_instructor(&self) -> bool {
        self.roles.iter().any(|r| {
            let role = Role::parse(r);
            role.scope == RoleScope::Membership && role.is_instructor()
        })
    }
    /// Best display name: `name`, else given + family, else email.
    pub fn display_name(&self) -> Option<String> {
        if let Some(n) = self.name.as_deref().filter(|s| !s.trim().is_empty()) {
            return Some(n.trim().to_string());
        }
        let parts: Vec<&str> = [self.given_name.as_deref(), self.family_name.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return Some(parts.join(" "));
        }
        self.email.clone()
    }
    /// A custom parameter (`custom.course` etc).
    pub fn custom_param(&self, key: &str) -> Option<&str> {
        self.custom.get(key).map(String::as_str)
    }
    /// `product_family_code` of the platform, e.g. "canvas", "moodle", "desire2learn".
    pub fn product_family(&self) -> Option<&str> {
        self.tool_platform
            .as_ref()
            .and_then(|p| p.product_family_code.as_deref())
    }
}

/// Which vocabulary a role comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleScope {
    /// Context (course) membership roles; also the deprecated short names.
    Membership,
    Institution,
    System,
    Unknown,
}

/// A role string read as (scope, principal role, optional sub-role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub scope: RoleScope,
    pub name: String,
    pub sub_role: Option<String>,
}

const LIS_V2: &str = "http://purl.imsglobal.org/vocab/lis/v2/";

impl Role {
    /// Understands full LIS v2 URIs (membership, membership sub-roles,
    /// institution/person, system/person), LTI 1.1 URNs, and short names
    /// ("Learner", "Instructor"), which are membership roles.
    pub fn parse(role: &str) -> Role {
        let r = role.trim();
        let unknown = || Role {
            scope: RoleScope::Unknown,
            name: r.to_string(),
            sub_role: None,
        };
        let with = |scope, name: &str, sub: Option<&str>| Role {
            scope,
            name: name.to_string(),
            sub_role: sub.map(str::to_string),
        };
        let rest = r
            .strip_prefix(LIS_V2)
            .or_else(|| r.strip_prefix("https://purl.imsglobal.org/vocab/lis/v2/"));
        if let Some(rest) = rest {
            if let Some(name) = rest.strip_prefix("membership#") {
                return with(RoleScope::Membership, name, None);
            }
            if let Some(path) = rest.strip_prefix("membership/") {
                return match path.split_once('#') {
                    Some((principal, sub)) => with(RoleScope::Membership, principal, Some(sub)),
                    None => unknown(),
                };
            }
            if let Some(name) = rest.strip_prefix("institution/person#") {
                return with(RoleScope::Institution, name, None);
            }
            if let Some(name) = rest.strip_prefix("system/person#") {
                return with(RoleScope::System, name, None);
            }
            return unknown();
        }
        if let Some(rest) = r.strip_prefix("urn:lti:role:ims/lis/") {
            return match rest.split_once('/') {
                Some((p, s)) => with(RoleScope::Membership, p, Some(s)),
                None => with(RoleScope::Membership, rest, None),
            };
        }
        if let Some(rest) = r.strip_prefix("urn:lti:instrole:ims/lis/") {
            return with(RoleScope::Institution, rest, None);
        }
        if let Some(rest) = r.strip_prefix("urn:lti:sysrole:ims/lis/") {
            return with(RoleScope::System, rest, None);
        }
        if !r.is_empty() && !r.contains(':') && !r.contains('/') && !r.contains('#') {
            // Deprecated simple names are context roles.
            return with(RoleScope::Membership, r, None);
        }
        unknown()
    }

    pub fn is_instructor(&self) -> bool {
        match self.scope {
            RoleScope::Membership => {
                matches!(
                    self.name.as_str(),
                    "Instructor" | "Administrator" | "ContentDeveloper"
                ) && !self.is_teaching_assistant()
            }
            RoleScope::Institution => {
                matches!(
                    self.name.as_str(),
                    "Instructor" | "Faculty" | "Administrator"
                )
            }
            RoleScope::System => matches!(self.name.as_str(), "Administrator" | "SysAdmin"),
            RoleScope::Unknown => false,
        }
    }

    pub fn is_learner(&self) -> bool {
        match self.scope {
            RoleScope::Membership => self.name == "Learner",
            RoleScope::Institution => matches!(self.name.as_str(), "Student" | "Learner"),
            _ => false,
        }
    }

    pub fn is_teaching_assistant(&self) -> bool {
        self.scope == RoleScope::Membership
            && (self.name == "TeachingAssistant"
                || self.sub_role.as_deref() == Some("TeachingAssistant"))
    }

    pub fn is_admin(&self) -> bool {
        match self.scope {
            RoleScope::Membership | RoleScope::Institution => self.name == "Administrator",
            RoleScope::System => matches!(self.name.as_str(), "Administrator" | "SysAdmin"),
            RoleScope::Unknown => false,
        }
    }

    pub fn is_mentor(&self) -> bool {
        self.scope == RoleScope::Membership && self.name == "Mentor"
    }
}

/// True if any role is an instructor-like role (course instructor or
/// administrator, institution faculty/instructor/administrator, system administrator).
pub fn roles_include_instructor<S: AsRef<str>>(roles: &[S]) -> bool {
    roles
        .iter()
        .any(|r| Role::parse(r.as_ref()).is_instructor())
}

/// True if any role is a learner role (course learner, institution student/learner).
pub fn roles_include_learner<S: AsRef<str>>(roles: &[S]) -> bool {
    roles.iter().any(|r| Role::parse(r.as_ref()).is_learner())
}

/// Full role URIs, for building messages and tests.
pub mod roles {
    pub const LEARNER: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner";
    pub const INSTRUCTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor";
    pub const MENTOR: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor";
    pub const CONTENT_DEVELOPER: &str =
        "http://purl.imsglobal.org/vocab/lis/v2/membership#ContentDeveloper";
    pub const CONTEXT_ADMIN: &str =
        "http://purl.imsglobal.org/vocab/lis/v2/membership#Administrator";
    pub const TEACHING_ASSISTANT: &str =
        "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant";
    pub const INSTITUTION_STUDENT: &str =
        "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student";
    pub const INSTITUTION_FACULTY: &str =
        "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Faculty";
    pub const INSTITUTION_INSTRUCTOR: &str =
        "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor";
    pub const INSTITUTION_ADMIN: &str =
        "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator";
    pub const SYSTEM_ADMIN: &str =
        "http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_parsing() {
        assert!(Role::parse("Instructor").is_instructor());
        assert!(Role::parse("Learner").is_learner());
        assert!(Role::parse(roles::INSTRUCTOR).is_instructor());
        assert!(Role::parse(roles::LEARNER).is_learner());
        assert!(Role::parse(roles::INSTITUTION_FACULTY).is_instructor());
        assert!(Role::parse(roles::INSTITUTION_STUDENT).is_learner());
        assert!(Role::parse(roles::SYSTEM_ADMIN).is_instructor());
        assert!(Role::parse(roles::SYSTEM_ADMIN).is_admin());
        let ta = Role::parse(roles::TEACHING_ASSISTANT);
        assert!(ta.is_teaching_assistant());
        assert!(!ta.is_instructor());
        assert_eq!(ta.sub_role.as_deref(), Some("TeachingAssistant"));
        assert!(Role::parse("urn:lti:role:ims/lis/Learner").is_learner());
        assert!(Role::parse("urn:lti:instrole:ims/lis/Faculty").is_instructor());
        let unknown = Role::parse(
            "http://purl.imsglobal.org/vocab/lis/v2/membership/Learner#NonCreditLearner",
        );
        assert!(unknown.is_learner());
        let odd = Role::parse("http://example.com/role#Dragon");
        assert_eq!(odd.scope, RoleScope::Unknown);
        assert!(!odd.is_learner() && !odd.is_instructor());
        assert!(roles_include_learner(&["x", "Learner"]));
        assert!(!roles_include_instructor::<&str>(&[]));
    }
}
