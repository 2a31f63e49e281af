-- Undo V3: drop the analytics table (its index goes with it).
-- The repeatable camera_activity view reads analytics, and PostgreSQL refuses
-- to drop a table a view depends on, so the view goes first.
DROP VIEW IF EXISTS camera_activity;
DROP TABLE analytics;
