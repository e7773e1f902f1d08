DROP INDEX sessions_learner;
DROP INDEX sessions_staff;
CREATE INDEX sessions_learner ON sessions(learner_id);
CREATE INDEX sessions_staff ON sessions(staff_id);
