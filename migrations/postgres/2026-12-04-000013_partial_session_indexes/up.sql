-- A session belongs to a learner or to a staff member, never both: each
-- index holds only the rows that have its column, so a learner's session
-- (every launch and sign-in starts one) no longer adds a NULL entry to the
-- staff index. Lookups by `learner_id = ?` / `staff_id = ?` imply
-- IS NOT NULL and still use them.
DROP INDEX sessions_learner;
DROP INDEX sessions_staff;
CREATE INDEX sessions_learner ON sessions(learner_id) WHERE learner_id IS NOT NULL;
CREATE INDEX sessions_staff ON sessions(staff_id) WHERE staff_id IS NOT NULL;
