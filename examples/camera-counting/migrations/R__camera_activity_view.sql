-- Repeatable: (re)create camera_activity, the number of readings and total count per camera.
DROP VIEW IF EXISTS camera_activity;

CREATE VIEW camera_activity AS
SELECT c.id AS camera_id, c.name, COUNT(a.id) AS readings, SUM(a.count) AS total_count
FROM cameras c
LEFT JOIN analytics a ON a.camera_id = c.id
GROUP BY c.id, c.name;
