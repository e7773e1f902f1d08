DROP TABLE lti_deep_link_requests;
DROP TABLE lti_tickets;
DROP TABLE lti_launches;
DROP TABLE lti_resource_links;
DROP TABLE lti_nonces;
DROP TABLE lti_login_states;
DROP TABLE lti_deployments;
DROP TABLE lti_platforms;
