-- Backend pushes: the 95th percentile of the time from the push request to every user's hub
-- having delivered it (kind "delivery", double2 milliseconds, double1 devices reached), per hour.
SELECT
  toStartOfInterval(timestamp, INTERVAL '1' HOUR) AS hour,
  quantileExactWeighted(0.95)(double2, _sample_interval) AS p95_ms,
  SUM(_sample_interval * double1) AS devices_reached,
  SUM(_sample_interval) AS pushes
FROM switchboard
WHERE blob1 = 'delivery' AND timestamp > NOW() - INTERVAL '1' DAY
GROUP BY hour
ORDER BY hour
