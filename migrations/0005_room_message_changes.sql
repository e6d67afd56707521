-- Room messages can be edited (body, edited_at) and recalled (content emptied, deleted_at): the
-- Room copies each change here after the message itself.
ALTER TABLE room_messages ADD COLUMN edited_at INTEGER;
ALTER TABLE room_messages ADD COLUMN deleted_at INTEGER;
