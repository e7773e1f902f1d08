-- Staff single sign-on (OpenID Connect): the login state of each sign-in
-- attempt, kept in the database so any instance can finish what another
-- started. Single use (used_at), short-lived (expires_at).
CREATE TABLE sso_states (
    id TEXT PRIMARY KEY NOT NULL,
    state_hash TEXT NOT NULL UNIQUE,
    browser_hash TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX sso_states_expires ON sso_states(expires_at);
