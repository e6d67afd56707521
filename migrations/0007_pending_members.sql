-- A member another user added (POST /v1/rooms with members, POST /v1/rooms/{id}/members) is
-- pending (1) until they act in the room themselves: connect to it, or send, read, edit or delete
-- over REST. While pending, presence and the member list tell nothing about their activity.
-- Members a backend adds, creators, and every member from before this migration are active (0).
ALTER TABLE room_members ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
