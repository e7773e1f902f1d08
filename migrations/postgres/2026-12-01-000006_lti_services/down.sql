DROP TABLE lti_access_tokens;
DROP TABLE lti_enrolment_links;
