-- Counting the rooms a user created in the last 24 hours (MAX_ROOMS_PER_DAY) by index.

CREATE INDEX rooms_by_creator ON rooms (created_by, created_at);
