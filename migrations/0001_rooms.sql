-- Rooms, their members and a queryable copy of each room's message stream.
-- Membership is authoritative here (the Worker writes it); messages and read cursors are written
-- first to the Room Durable Object's own storage and copied here by the room's alarm.

CREATE TABLE rooms (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  created_by  TEXT,
  created_at  INTEGER NOT NULL,          -- unix ms
  last_seq    INTEGER NOT NULL DEFAULT 0,
  activity_at INTEGER NOT NULL           -- unix ms of the newest message, or creation
);

CREATE TABLE room_members (
  room_id   TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
  user_id   TEXT NOT NULL,
  role      TEXT NOT NULL CHECK (role IN ('owner', 'member')),
  joined_at INTEGER NOT NULL,            -- unix ms
  read_seq  INTEGER NOT NULL DEFAULT 0,  -- forward only
  PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_by_user ON room_members (user_id, room_id);

CREATE TABLE room_messages (
  room_id    TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
  seq        INTEGER NOT NULL,
  id         TEXT NOT NULL UNIQUE,
  sender_id  TEXT,                       -- NULL for system messages
  type       TEXT NOT NULL,
  body       TEXT NOT NULL,
  url        TEXT,
  title      TEXT,
  data       TEXT,                       -- JSON object or NULL
  client_id  TEXT,
  created_at INTEGER NOT NULL,           -- unix ms
  PRIMARY KEY (room_id, seq)
);
