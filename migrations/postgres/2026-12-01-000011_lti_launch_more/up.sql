-- Audiences an LTI platform's id_tokens may name besides the tool's
-- client_id (one per line; NULL for none). With several audiences the token
-- must also carry azp = the tool's client_id.
ALTER TABLE lti_platforms ADD COLUMN trusted_audiences TEXT;
