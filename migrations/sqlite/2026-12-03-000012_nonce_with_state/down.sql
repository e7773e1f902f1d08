CREATE TABLE lti_nonces (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    nonce TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    UNIQUE (platform_id, nonce)
);
