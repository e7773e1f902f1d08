//! Staff users and roles.

use chrono::{DateTime, Utc};
use coursegate_store::{models::StaffUser, repo, Tx};
use serde::{Deserialize, Serialize};

use crate::{ids::new_id, types::Email, CoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Instructor,
    Support,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Instructor => "instructor",
            Role::Support => "support",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "instructor" => Ok(Role::Instructor),
            "support" => Ok(Role::Support),
            _ => Err(CoreError::invalid(
                "role",
                "must be one of owner, admin, instructor, support",
            )),
        }
    }
}

/// Finds a staff user by email or creates one with `role`.
pub fn ensure(
    tx: &mut Tx,
    now: DateTime<Utc>,
    email: &Email,
    name: Option<&str>,
    role: Role,
) -> Result<(StaffUser, bool), CoreError> {
    if let Some(s) = repo::staff::find_by_email(tx, &email.lower())? {
        return Ok((s, false));
    }
    let n = now.naive_utc();
    let s = StaffUser {
        id: new_id(),
        email: email.as_str().to_string(),
        email_lower: email.lower(),
        name: name.map(str::to_string),
        role: role.as_str().to_string(),
        active: true,
        created_at: n,
        updated_at: n,
    };
    repo::staff::insert(tx, &s)?;
    Ok((s, true))
}
