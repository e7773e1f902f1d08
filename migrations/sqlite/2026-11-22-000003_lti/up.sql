-- LTI 1.3: platform registrations and their deployments, single-use OIDC
-- login state, used nonces, resource links mapped to courses, the launch
-- flight recorder, and one-time tickets for the new-window handoff.

CREATE TABLE lti_platforms (
    id TEXT PRIMARY KEY NOT NULL,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    name TEXT NOT NULL,
    auth_url TEXT NOT NULL,
    token_url TEXT NOT NULL,
    jwks_url TEXT NOT NULL,
    audience TEXT,
    customer TEXT,
    lms TEXT,
    unknown_deployments TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (issuer, client_id)
);

CREATE TABLE lti_deployments (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    deployment_id TEXT NOT NULL,
    status TEXT NOT NULL,
    name TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (platform_id, deployment_id)
);

CREATE TABLE lti_login_states (
    id TEXT PRIMARY KEY NOT NULL,
    state_hash TEXT NOT NULL UNIQUE,
    nonce TEXT NOT NULL,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    target_link_uri TEXT NOT NULL,
    deployment_hint TEXT,
    storage_target TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX lti_login_states_expires ON lti_login_states(expires_at);

CREATE TABLE lti_nonces (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    nonce TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    UNIQUE (platform_id, nonce)
);

CREATE TABLE lti_resource_links (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    deployment_id TEXT NOT NULL,
    context_id TEXT,
    context_title TEXT,
    resource_link_id TEXT NOT NULL,
    title TEXT,
    course_id TEXT REFERENCES courses(id) ON DELETE SET NULL,
    lineitem_url TEXT,
    lineitems_url TEXT,
    ags_scopes TEXT,
    nrps_url TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (platform_id, deployment_id, resource_link_id)
);

CREATE TABLE lti_launches (
    id TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    step TEXT NOT NULL,
    platform_id TEXT,
    issuer TEXT,
    client_id TEXT,
    deployment_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    state_path TEXT,
    lms TEXT,
    checks TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX lti_launches_at ON lti_launches(at);

CREATE TABLE lti_tickets (
    id TEXT PRIMARY KEY NOT NULL,
    ticket_hash TEXT NOT NULL UNIQUE,
    learner_id TEXT NOT NULL REFERENCES learners(id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    redirect TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);

CREATE TABLE lti_deep_link_requests (
    id TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    deployment_id TEXT NOT NULL,
    return_url TEXT NOT NULL,
    data TEXT,
    accept_multiple BOOLEAN NOT NULL,
    accept_lineitem BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
