ALTER TABLE lti_platforms DROP COLUMN trusted_audiences;
