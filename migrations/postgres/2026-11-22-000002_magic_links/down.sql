DROP TABLE device_bindings;
DROP TABLE rate_limits;
DROP TABLE signin_codes;
DROP TABLE magic_link_activity;
DROP TABLE magic_links;
