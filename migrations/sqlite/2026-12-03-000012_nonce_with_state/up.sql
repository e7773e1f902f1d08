-- A nonce is issued with exactly one login state and used up with it (the
-- state's single-use consumption), so it needs no row of its own.
DROP TABLE lti_nonces;
