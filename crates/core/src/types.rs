//! Parsed input types: constructed only through `parse`, so a value of the
//! type is always valid.

use serde::Serialize;

use crate::CoreError;

/// An email address, trimmed; `lower()` is the lookup key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let s = s.trim();
        let bad = |m: &str| CoreError::invalid("email", m.to_string());
        if s.is_empty() {
            return Err(bad("an email address is required"));
        }
        if s.len() > 254 {
            return Err(bad("is longer than 254 characters"));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(bad("must look like name@example.com"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the part before @ must be 1 to 64 characters"));
        }
        if domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad("the domain after @ must look like example.com"));
        }
        if s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ',' || c == ';'
        }) {
            return Err(bad("contains characters not allowed in an address"));
        }
        if domain
            .chars()
            .any(|c| !(c.is_alphanumeric() || c == '.' || c == '-'))
        {
            return Err(bad(
                "the domain contains characters not allowed in a domain",
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn lower(&self) -> String {
        self.0.to_lowercase()
    }

    /// `j•••@example.com`: enough for the owner to recognise, little for others.
    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

pub fn mask_email(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".to_string(),
    }
}

/// A course slug: 1–64 of a-z, 0-9 and '-', not starting or ending with '-'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(CoreError::invalid(
                "slug",
                "use 1 to 64 lowercase letters, digits and hyphens, e.g. first-aid-basics",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's display name: trimmed, 1–200 characters, no control characters.
pub fn parse_name(field: &'static str, s: Option<&str>) -> Result<Option<String>, CoreError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(n) if n.chars().count() > 200 => {
            Err(CoreError::invalid(field, "is longer than 200 characters"))
        }
        Some(n) if n.chars().any(char::is_control) => {
            Err(CoreError::invalid(field, "contains control characters"))
        }
        Some(n) => Ok(Some(n.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ann@Example.com ").unwrap().lower(),
            "ann@example.com"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@x.com",
            "a@.com",
            "a b@x.com",
            "a@x..com",
            "<a@x.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Email::parse("jane@example.com").unwrap().masked(),
            "j•••@example.com"
        );
    }

    #[test]
    fn slugs() {
        assert!(Slug::parse("first-aid-101").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", "a b", &"x".repeat(65)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }
}
