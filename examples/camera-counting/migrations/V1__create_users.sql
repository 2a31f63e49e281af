-- Create the users table (legacy users.user_id/user_name/email_address/account_status).
-- Emails are not unique: legacy data holds duplicates and malformed addresses.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username VARCHAR(100) NOT NULL,
    email VARCHAR(255),
    status VARCHAR(20) NOT NULL DEFAULT 'inactive',
    created_at TIMESTAMP
);

CREATE INDEX idx_users_email ON users (email);
