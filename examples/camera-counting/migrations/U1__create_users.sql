-- Undo V1: drop the users table (its index goes with it).
DROP TABLE users;
