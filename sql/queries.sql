-- Named statements used by dialer.repository. Each block: "-- name: x", a comment
-- saying what it is for, then one statement. Parameters are asyncpg's $1, $2, ...

-- name: list_campaigns
-- Every campaign with its contact counts by state, for `dialer campaign list`.
SELECT c.id, c.name, c.state, c.from_number, c.weight,
       count(k.id) AS contacts,
       count(k.id) FILTER (WHERE k.state IN ('done', 'failed', 'skipped')) AS finished
FROM campaigns c
LEFT JOIN contacts k ON k.campaign_id = c.id
GROUP BY c.id
ORDER BY c.id;
