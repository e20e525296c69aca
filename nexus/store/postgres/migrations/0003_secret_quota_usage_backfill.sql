-- Custom SQL migration file, put your code below! --
-- The quota counters of the namespaces that already hold secrets (ADR 0015),
-- charged as the store charges them (`secret_quotas.ts`): each row 64 bytes
-- (ROW_CHARGE_BYTES) plus its path, each path its sealed custom metadata,
-- each kept version its sealed data. A namespace is a path's first segment.
INSERT INTO "secret_quota_usage" ("namespace", "paths", "bytes")
SELECT
	split_part(m."path", '/', 1),
	count(*),
	sum(64 + octet_length(m."path") + coalesce(octet_length(m."custom_metadata"), 0) + coalesce(v."bytes", 0))
FROM "secret_metadata" AS m
LEFT JOIN (
	SELECT "path", sum(64 + octet_length("path") + coalesce(octet_length("ciphertext"), 0)) AS "bytes"
	FROM "secrets"
	GROUP BY "path"
) AS v ON v."path" = m."path"
GROUP BY split_part(m."path", '/', 1);
