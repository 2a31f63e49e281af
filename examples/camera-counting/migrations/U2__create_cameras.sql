-- Undo V2: drop the cameras table.
DROP TABLE cameras;
