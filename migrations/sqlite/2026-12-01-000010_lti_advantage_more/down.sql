DROP TABLE lti_roster_removals;
DROP TABLE lti_context_rosters;
