-- LTI Advantage, more: the NRPS differences URL a platform offered for a
-- context, per course the context's links open (the next roster sync of
-- that course reads only the changes), and the enrolments
-- a roster sync ended because the LMS listed the member as inactive (so a
-- later sync that lists them active again restores access, while an
-- enrolment staff revoked stays revoked).

CREATE TABLE lti_context_rosters (
    id TEXT PRIMARY KEY NOT NULL,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    context_id TEXT NOT NULL,
    course_id TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    differences_url TEXT,
    synced_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (platform_id, context_id, course_id)
);

CREATE TABLE lti_roster_removals (
    enrolment_id TEXT PRIMARY KEY NOT NULL REFERENCES enrolments(id) ON DELETE CASCADE,
    platform_id TEXT NOT NULL REFERENCES lti_platforms(id) ON DELETE CASCADE,
    lti_sub TEXT NOT NULL,
    removed_at TIMESTAMP NOT NULL
);
