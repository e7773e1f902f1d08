-- Instructor scoping: the courses an instructor is assigned to. An
-- instructor sees and changes only these courses, their enrolments and the
-- learners enrolled in them. Other roles ignore the table.
CREATE TABLE staff_course_scopes (
    staff_id TEXT NOT NULL REFERENCES staff_users(id) ON DELETE CASCADE,
    course_id TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT,
    PRIMARY KEY (staff_id, course_id)
);
CREATE INDEX staff_course_scopes_course ON staff_course_scopes(course_id);

-- One row per sent line of a CSV invitation sheet, so the batch progress
-- page can follow each row's email through the outbox.
CREATE TABLE invitation_rows (
    batch_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    email TEXT NOT NULL,
    course_slug TEXT NOT NULL,
    learner_id TEXT NOT NULL REFERENCES learners(id) ON DELETE CASCADE,
    outbox_id TEXT,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (batch_id, line)
);
