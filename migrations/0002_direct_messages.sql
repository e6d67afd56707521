-- Direct messages: one row per message and one receipt per receiver, each party with its own
-- delete state. Messages are written here before they are pushed through the receivers' user
-- streams, so a message a sender was told is stored, is stored.

CREATE TABLE direct_messages (
  id                TEXT PRIMARY KEY,
  sender_id         TEXT NOT NULL,
  type              TEXT NOT NULL,
  body              TEXT NOT NULL,
  url               TEXT,
  title             TEXT,
  data              TEXT,                -- JSON object or NULL
  client_id         TEXT,
  created_at        INTEGER NOT NULL,    -- unix ms
  sender_deleted_at INTEGER              -- the sender deleted it from their sent list
);
CREATE UNIQUE INDEX direct_messages_by_client_id ON direct_messages (sender_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX direct_messages_by_sender ON direct_messages (sender_id, created_at, id);
CREATE INDEX direct_messages_by_time ON direct_messages (created_at, id);

CREATE TABLE direct_receipts (
  message_id  TEXT NOT NULL REFERENCES direct_messages (id) ON DELETE CASCADE,
  receiver_id TEXT NOT NULL,
  created_at  INTEGER NOT NULL,          -- the message's, for ordering a receiver's list
  read_at     INTEGER,
  deleted_at  INTEGER,                   -- the receiver deleted it for themselves
  PRIMARY KEY (message_id, receiver_id)
);
CREATE INDEX direct_receipts_by_receiver ON direct_receipts (receiver_id, created_at, message_id);
