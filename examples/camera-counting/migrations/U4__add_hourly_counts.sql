-- Undo V4: drop the hourly_counts table.
DROP TABLE hourly_counts;
