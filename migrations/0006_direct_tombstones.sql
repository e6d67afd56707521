-- A direct message deleted for everyone keeps its row as a tombstone: its content emptied and
-- `deleted_at` set (its receipts are deleted). A retry of its `client_id` then finds it and is
-- answered as a duplicate instead of storing the message again under a new id; every listing
-- leaves tombstones out.

ALTER TABLE direct_messages ADD COLUMN deleted_at INTEGER;  -- unix ms, deleted for everyone
