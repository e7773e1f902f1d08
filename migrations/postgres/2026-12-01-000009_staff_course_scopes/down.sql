DROP TABLE invitation_rows;
DROP TABLE staff_course_scopes;
