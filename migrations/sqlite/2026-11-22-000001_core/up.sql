-- Core tables: learners, identities, courses, lessons, enrolments, progress,
-- sessions, staff, settings, audit log and the generic outbox.
-- Every id is a lowercase hyphenated UUID stored as text; every timestamp is
-- written from the application clock in UTC (no database defaults).

CREATE TABLE learners (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT,
    email_lower TEXT UNIQUE,
    name TEXT,
    external_id TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE learner_identities (
    id TEXT PRIMARY KEY NOT NULL,
    learner_id TEXT NOT NULL REFERENCES learners(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    identity_key TEXT NOT NULL UNIQUE,
    email_lower TEXT,
    lti_issuer TEXT,
    lti_client_id TEXT,
    lti_sub TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX learner_identities_learner ON learner_identities(learner_id);

CREATE TABLE courses (
    id TEXT PRIMARY KEY NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    published BOOLEAN NOT NULL,
    graded BOOLEAN NOT NULL,
    link_policy TEXT NOT NULL,
    default_access_days INTEGER,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE lessons (
    id TEXT PRIMARY KEY NOT NULL,
    course_id TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    title TEXT NOT NULL,
    body_format TEXT NOT NULL,
    body TEXT NOT NULL,
    required BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (course_id, position)
);

CREATE TABLE enrolments (
    id TEXT PRIMARY KEY NOT NULL,
    learner_id TEXT NOT NULL REFERENCES learners(id) ON DELETE CASCADE,
    course_id TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    source_ref TEXT,
    status TEXT NOT NULL,
    starts_at TIMESTAMP,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (learner_id, course_id)
);
CREATE INDEX enrolments_course ON enrolments(course_id);

CREATE TABLE progress (
    id TEXT PRIMARY KEY NOT NULL,
    enrolment_id TEXT NOT NULL REFERENCES enrolments(id) ON DELETE CASCADE,
    lesson_id TEXT NOT NULL REFERENCES lessons(id) ON DELETE CASCADE,
    completed_at TIMESTAMP NOT NULL,
    UNIQUE (enrolment_id, lesson_id)
);

CREATE TABLE staff_users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    email_lower TEXT NOT NULL UNIQUE,
    name TEXT,
    role TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    subject_kind TEXT NOT NULL,
    learner_id TEXT REFERENCES learners(id) ON DELETE CASCADE,
    staff_id TEXT REFERENCES staff_users(id) ON DELETE CASCADE,
    via TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    idle_timeout_secs BIGINT NOT NULL,
    absolute_expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX sessions_learner ON sessions(learner_id);
CREATE INDEX sessions_staff ON sessions(staff_id);

CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    subject_kind TEXT,
    subject_id TEXT,
    ip TEXT,
    user_agent TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_subject ON audit_log(subject_kind, subject_id);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    last_error TEXT,
    dedupe_key TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
