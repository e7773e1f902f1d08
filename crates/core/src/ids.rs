//! Identifiers: UUIDv7 (time-ordered) as lowercase hyphenated text.

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// True when `s` is a canonical UUID string (used to reject forged ids early).
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s)
        .map(|u| u.hyphenated().to_string() == s)
        .unwrap_or(false)
}
