//! Site settings used in pages and emails (name, support contacts, logo).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use coursegate_store::{repo, Tx};
use serde::Serialize;

use crate::CoreError;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Site {
    pub name: String,
    pub support_email: String,
    pub support_phone: String,
    pub logo_url: String,
}

impl Default for Site {
    fn default() -> Self {
        Self {
            name: "Coursegate".into(),
            support_email: String::new(),
            support_phone: String::new(),
            logo_url: String::new(),
        }
    }
}

pub fn site(tx: &mut Tx) -> Result<Site, CoreError> {
    let all: BTreeMap<String, String> = repo::settings::all(tx)?
        .into_iter()
        .map(|s| (s.key, s.value))
        .collect();
    let d = Site::default();
    let get = |k: &str, d: String| all.get(k).cloned().unwrap_or(d);
    Ok(Site {
        name: get("site.name", d.name),
        support_email: get("site.support_email", d.support_email),
        support_phone: get("site.support_phone", d.support_phone),
        logo_url: get("site.logo_url", d.logo_url),
    })
}

pub fn save_site(tx: &mut Tx, now: DateTime<Utc>, site: &Site) -> Result<(), CoreError> {
    let n = now.naive_utc();
    repo::settings::put(tx, "site.name", &site.name, n)?;
    repo::settings::put(tx, "site.support_email", &site.support_email, n)?;
    repo::settings::put(tx, "site.support_phone", &site.support_phone, n)?;
    repo::settings::put(tx, "site.logo_url", &site.logo_url, n)?;
    Ok(())
}
