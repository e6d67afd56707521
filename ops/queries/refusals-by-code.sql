-- Connects and requests refused in the last day, by error code (kind "refusal", label the code,
-- double2 the HTTP status: 101 for a Socket.IO refusal made in band).
SELECT
  blob2 AS code,
  SUM(_sample_interval) AS refusals,
  max(double2) AS status
FROM switchboard
WHERE blob1 = 'refusal' AND timestamp > NOW() - INTERVAL '1' DAY
GROUP BY code
ORDER BY refusals DESC
