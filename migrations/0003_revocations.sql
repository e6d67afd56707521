-- Revocation cut-offs: every token of the user issued at or before `revoked_before` (unix
-- seconds, whole) is refused, and so is every token without `iat`. Written by
-- POST /internal/v1/users/{id}/disconnect with "revoke": true; read by REST and room connects.

CREATE TABLE revocations (
  user_id        TEXT PRIMARY KEY,
  revoked_before INTEGER NOT NULL,
  revoked_at     INTEGER NOT NULL        -- unix ms of the newest revocation
);
