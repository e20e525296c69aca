-- Custom SQL migration file, put your code below! --
-- The quota counters of the namespaces that already hold secrets (ADR 0015),
-- charged as the store charges them (`secret_quotas.ts`): each row 64 bytes
-- (ROW_CHARGE_BYTES) plus its path, each path its sealed custom metadata,
-- each kept version its sealed data. A namespace is a path's first segment.
-- Paths are ASCII, so length() of a path counts bytes; of a BLOB it always does.
INSERT INTO `secret_quota_usage` (`namespace`, `paths`, `bytes`)
SELECT `namespace`, count(*), sum(`bytes`)
FROM (
	SELECT
		CASE WHEN instr(m.`path`, '/') = 0 THEN m.`path`
			ELSE substr(m.`path`, 1, instr(m.`path`, '/') - 1) END AS `namespace`,
		64 + length(m.`path`) + coalesce(length(m.`custom_metadata`), 0) + (
			SELECT coalesce(sum(64 + length(s.`path`) + coalesce(length(s.`ciphertext`), 0)), 0)
			FROM `secrets` AS s
			WHERE s.`path` = m.`path`
		) AS `bytes`
	FROM `secret_metadata` AS m
)
GROUP BY `namespace`;
