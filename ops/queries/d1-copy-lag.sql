-- Rooms whose D1 copy fell behind in the last hour: the most seqs behind after a batch (kind
-- "d1_copy", label ok or failed, subject the room id for ok batches).
SELECT
  blob3 AS room_id,
  blob2 AS outcome,
  max(double2) AS most_seqs_behind,
  SUM(_sample_interval) AS batches
FROM switchboard
WHERE blob1 = 'd1_copy' AND timestamp > NOW() - INTERVAL '1' HOUR
GROUP BY room_id, outcome
ORDER BY most_seqs_behind DESC
LIMIT 50
