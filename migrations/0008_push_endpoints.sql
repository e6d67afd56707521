-- Which user holds each Web Push subscription endpoint. The subscription itself (endpoint and
-- keys) lives in the user's UserHub; this table only makes an endpoint belong to one user: a
-- second user registering the same endpoint (one browser profile, another account) takes it
-- over, and the first user's hub is told to drop it. `id` is the first 16 bytes of the
-- endpoint's SHA-256, hex (the endpoint itself is a capability URL and is not stored here).

CREATE TABLE push_endpoints (
  id         TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL,
  claimed_at INTEGER NOT NULL           -- unix ms
);
CREATE INDEX push_endpoints_by_user ON push_endpoints (user_id);
