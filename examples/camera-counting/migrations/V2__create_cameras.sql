-- Create the cameras table, each camera optionally owned by a user.
CREATE TABLE cameras (
    id INTEGER PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    location VARCHAR(200),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    owner_id INTEGER,
    CONSTRAINT fk_cameras_owner FOREIGN KEY (owner_id) REFERENCES users (id)
);
