-- Limits users hit in the last day (kind "limit", label: rate_limited for the per-user rates,
-- frame_rate, frame_size, socket_cap for the per-socket ones).
SELECT
  blob2 AS limit,
  SUM(_sample_interval) AS hits
FROM switchboard
WHERE blob1 = 'limit' AND timestamp > NOW() - INTERVAL '1' DAY
GROUP BY limit
ORDER BY hits DESC
