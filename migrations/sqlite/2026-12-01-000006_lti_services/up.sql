-- LTI Advantage services: which LTI launch an enrolment came from (so grade
-- passback can address the learner as the platform's `sub` on the resource
-- link's line item), and OAuth2 client-credentials access tokens cached per
-- platform and scope set, shared by every instance.

CREATE TABLE lti_enrolment_links (
    enrolment_id TEXT PRIMARY KEY NOT NULL REFERENCES enrolments(id) ON DELETE CASCADE,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    resource_link_id TEXT NOT NULL REFERENCES lti_resource_links(id) ON DELETE CASCADE,
    lti_sub TEXT NOT NULL,
    last_score_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE lti_access_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    scope_key TEXT NOT NULL,
    access_token TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (platform_id, scope_key)
);
