//! Learners and their identities.
//!
//! A learner is reached through identities: an email address, or an LTI
//! (issuer, client_id, sub) triple. An LTI learner and an email learner with
//! the same address are NOT merged silently: the LTI identity gets its own
//! learner (its email is stored for display only) unless staff link them.

use chrono::{DateTime, Utc};
use coursegate_store::{
    models::{Learner, LearnerIdentity},
    repo, Tx,
};
use serde::{Deserialize, Serialize};

use crate::{ids::new_id, types::Email, CoreError};

/// An identity presented by a door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IdentityRef {
    Email {
        email: String,
    },
    Lti {
        issuer: String,
        client_id: String,
        sub: String,
    },
    Learner {
        learner_id: String,
    },
}

impl IdentityRef {
    pub fn key(&self) -> String {
        match self {
            IdentityRef::Email { email } => format!("email:{}", email.to_lowercase()),
            IdentityRef::Lti {
                issuer,
                client_id,
                sub,
            } => format!("lti:{issuer}\n{client_id}\n{sub}"),
            IdentityRef::Learner { learner_id } => format!("learner:{learner_id}"),
        }
    }
}

/// Resolves an identity to its learner, if any.
pub fn resolve(tx: &mut Tx, identity: &IdentityRef) -> Result<Option<Learner>, CoreError> {
    match identity {
        IdentityRef::Learner { learner_id } => Ok(repo::learners::get(tx, learner_id)?),
        other => match repo::learners::find_identity(tx, &other.key())? {
            Some(i) => Ok(repo::learners::get(tx, &i.learner_id)?),
            None => Ok(None),
        },
    }
}

/// Result of an upsert: the learner and whether it was created now.
#[derive(Debug, Clone)]
pub struct Upserted {
    pub learner: Learner,
    pub created: bool,
}

/// Finds the learner of an email address or creates it (with its email
/// identity). A given name fills an empty name; it never overwrites one
/// unless `overwrite_name`.
pub fn upsert_by_email(
    tx: &mut Tx,
    now: DateTime<Utc>,
    email: &Email,
    name: Option<&str>,
    external_id: Option<&str>,
    overwrite_name: bool,
) -> Result<Upserted, CoreError> {
    let n = now.naive_utc();
    if let Some(mut l) = repo::learners::find_by_email(tx, &email.lower())? {
        let mut changed = false;
        if let Some(name) = name {
            if l.name.is_none() || (overwrite_name && l.name.as_deref() != Some(name)) {
                l.name = Some(name.to_string());
                changed = true;
            }
        }
        if let Some(x) = external_id {
            if l.external_id.as_deref() != Some(x) {
                if let Some(other) = repo::learners::find_by_external_id(tx, x)? {
                    if other.id != l.id {
                        return Err(CoreError::Conflict(format!(
                            "external_id {x:?} already belongs to another learner"
                        )));
                    }
                }
                l.external_id = Some(x.to_string());
                changed = true;
            }
        }
        if changed {
            l.updated_at = n;
            repo::learners::update(tx, &l)?;
        }
        return Ok(Upserted {
            learner: l,
            created: false,
        });
    }
    if let Some(x) = external_id {
        if repo::learners::find_by_external_id(tx, x)?.is_some() {
            return Err(CoreError::Conflict(format!(
                "external_id {x:?} already belongs to another learner"
            )));
        }
    }
    let l = Learner {
        id: new_id(),
        email: Some(email.as_str().to_string()),
        email_lower: Some(email.lower()),
        name: name.map(str::to_string),
        external_id: external_id.map(str::to_string),
        created_at: n,
        updated_at: n,
    };
    repo::learners::insert(tx, &l)?;
    repo::learners::insert_identity(
        tx,
        &LearnerIdentity {
            id: new_id(),
            learner_id: l.id.clone(),
            kind: "email".into(),
            identity_key: IdentityRef::Email {
                email: email.lower(),
            }
            .key(),
            email_lower: Some(email.lower()),
            lti_issuer: None,
            lti_client_id: None,
            lti_sub: None,
            created_at: n,
        },
    )?;
    Ok(Upserted {
        learner: l,
        created: true,
    })
}

/// Updates the learner who has `external_id` (your system's id for them),
/// if there is one: a changed email moves their email identity (refused when
/// the new address belongs to another learner), a given name replaces theirs.
/// `None` when no learner has that external id.
pub fn update_by_external_id(
    tx: &mut Tx,
    now: DateTime<Utc>,
    external_id: &str,
    email: &Email,
    name: Option<&str>,
) -> Result<Option<Learner>, CoreError> {
    let Some(mut l) = repo::learners::find_by_external_id(tx, external_id)? else {
        return Ok(None);
    };
    let mut changed = false;
    if l.email_lower.as_deref() != Some(email.lower().as_str()) {
        if let Some(other) = repo::learners::find_by_email(tx, &email.lower())? {
            if other.id != l.id {
                return Err(CoreError::Conflict(format!(
                    "external_id {external_id:?} belongs to one learner and this email to another"
                )));
            }
        }
        let key = IdentityRef::Email {
            email: email.lower(),
        }
        .key();
        if repo::learners::retarget_email_identity(tx, &l.id, &key, &email.lower())? == 0 {
            repo::learners::insert_identity(
                tx,
                &LearnerIdentity {
                    id: new_id(),
                    learner_id: l.id.clone(),
                    kind: "email".into(),
                    identity_key: key,
                    email_lower: Some(email.lower()),
                    lti_issuer: None,
                    lti_client_id: None,
                    lti_sub: None,
                    created_at: now.naive_utc(),
                },
            )?;
        }
        l.email = Some(email.as_str().to_string());
        l.email_lower = Some(email.lower());
        changed = true;
    } else if l.email.as_deref() != Some(email.as_str()) {
        l.email = Some(email.as_str().to_string());
        changed = true;
    }
    if let Some(n) = name {
        if l.name.as_deref() != Some(n) {
            l.name = Some(n.to_string());
            changed = true;
        }
    }
    if changed {
        l.updated_at = now.naive_utc();
        repo::learners::update(tx, &l)?;
    }
    Ok(Some(l))
}

/// Finds or creates the learner of an LTI identity; refreshes name and email
/// when the platform sends them.
pub fn upsert_by_lti(
    tx: &mut Tx,
    now: DateTime<Utc>,
    issuer: &str,
    client_id: &str,
    sub: &str,
    email: Option<&str>,
    name: Option<&str>,
) -> Result<Upserted, CoreError> {
    let n = now.naive_utc();
    let identity = IdentityRef::Lti {
        issuer: issuer.to_string(),
        client_id: client_id.to_string(),
        sub: sub.to_string(),
    };
    if let Some(mut l) = repo::learners::find_by_identity(tx, &identity.key())? {
        let mut changed = false;
        if name.is_some() && l.name.as_deref() != name {
            l.name = name.map(str::to_string);
            changed = true;
        }
        if email.is_some() && l.email.as_deref() != email {
            l.email = email.map(str::to_string);
            changed = true;
        }
        if changed {
            l.updated_at = n;
            repo::learners::update(tx, &l)?;
        }
        return Ok(Upserted {
            learner: l,
            created: false,
        });
    }
    // email_lower stays empty: it is the unique key of the email door and an
    // LTI-supplied address is not proof of ownership.
    let l = Learner {
        id: new_id(),
        email: email.map(str::to_string),
        email_lower: None,
        name: name.map(str::to_string),
        external_id: None,
        created_at: n,
        updated_at: n,
    };
    repo::learners::insert(tx, &l)?;
    repo::learners::insert_identity(
        tx,
        &LearnerIdentity {
            id: new_id(),
            learner_id: l.id.clone(),
            kind: "lti".into(),
            identity_key: identity.key(),
            email_lower: email.map(str::to_lowercase),
            lti_issuer: Some(issuer.to_string()),
            lti_client_id: Some(client_id.to_string()),
            lti_sub: Some(sub.to_string()),
            created_at: n,
        },
    )?;
    Ok(Upserted {
        learner: l,
        created: true,
    })
}

pub fn get(tx: &mut Tx, id: &str) -> Result<Learner, CoreError> {
    repo::learners::get(tx, id)?.ok_or(CoreError::NotFound("learner"))
}

/// Display name: name, else email, else "Learner".
pub fn display_name(l: &Learner) -> String {
    l.name
        .clone()
        .or_else(|| l.email.clone())
        .unwrap_or_else(|| "Learner".to_string())
}
