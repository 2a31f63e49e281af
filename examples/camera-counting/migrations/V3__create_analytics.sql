-- Create the analytics table: one people-count reading per camera and timestamp.
CREATE TABLE analytics (
    id BIGINT PRIMARY KEY,
    camera_id INTEGER NOT NULL,
    count INTEGER NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    CONSTRAINT fk_analytics_camera FOREIGN KEY (camera_id) REFERENCES cameras (id)
);

CREATE INDEX idx_analytics_camera_time ON analytics (camera_id, recorded_at);
