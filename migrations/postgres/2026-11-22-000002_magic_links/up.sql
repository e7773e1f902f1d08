-- Magic links (learner and staff), sign-in codes, database-kept rate limits
-- and device bindings for step-up. Only keyed hashes of tokens, codes and
-- browser/device cookies are stored. Every timestamp is written from the
-- application clock in UTC.

CREATE TABLE magic_links (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    purpose TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    enrolment_id TEXT REFERENCES enrolments(id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    email TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    first_redeemed_at TIMESTAMP,
    redeem_count INTEGER NOT NULL,
    max_redeems INTEGER NOT NULL,
    superseded_at TIMESTAMP,
    revoked_at TIMESTAMP,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX magic_links_subject ON magic_links(subject_id, purpose, created_at);

-- What happened to a link after issue (for the staff status column).
CREATE TABLE magic_link_activity (
    link_id TEXT PRIMARY KEY NOT NULL REFERENCES magic_links(id) ON DELETE CASCADE,
    sent_at TIMESTAMP,
    last_opened_at TIMESTAMP,
    opened_count INTEGER NOT NULL,
    suspected_scanner BOOLEAN NOT NULL,
    last_redeemed_at TIMESTAMP
);

CREATE TABLE signin_codes (
    id TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    learner_id TEXT REFERENCES learners(id) ON DELETE CASCADE,
    link_id TEXT REFERENCES magic_links(id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX signin_codes_browser ON signin_codes(browser_hash, created_at);

CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY NOT NULL,
    window_start TIMESTAMP NOT NULL,
    count INTEGER NOT NULL
);

CREATE TABLE device_bindings (
    id TEXT PRIMARY KEY NOT NULL,
    link_id TEXT NOT NULL REFERENCES magic_links(id) ON DELETE CASCADE,
    device_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (link_id, device_hash)
);
