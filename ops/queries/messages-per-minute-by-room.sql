-- Room messages stored per minute, by room, over the last hour (src/metrics.rs: kind "message",
-- label "room", subject the room id). Multiply by _sample_interval: Analytics Engine samples.
SELECT
  toStartOfInterval(timestamp, INTERVAL '1' MINUTE) AS minute,
  blob3 AS room_id,
  SUM(_sample_interval * double1) AS messages
FROM switchboard
WHERE blob1 = 'message' AND blob2 = 'room' AND timestamp > NOW() - INTERVAL '1' HOUR
GROUP BY minute, room_id
ORDER BY minute DESC, messages DESC
LIMIT 200
