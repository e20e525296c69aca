CREATE TABLE `secret_quota_usage` (
	`namespace` text PRIMARY KEY NOT NULL,
	`paths` integer NOT NULL,
	`bytes` integer NOT NULL,
	CONSTRAINT "secret_quota_usage_paths_not_negative" CHECK("secret_quota_usage"."paths" >= 0),
	CONSTRAINT "secret_quota_usage_bytes_not_negative" CHECK("secret_quota_usage"."bytes" >= 0)
);
