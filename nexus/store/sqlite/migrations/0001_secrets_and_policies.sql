CREATE TABLE `policies` (
	`name` text PRIMARY KEY NOT NULL,
	`spiffe_id_pattern` text NOT NULL,
	`path_pattern` text NOT NULL,
	`permissions` text NOT NULL,
	`created_at_ms` integer NOT NULL,
	`updated_at_ms` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `secret_metadata` (
	`path` text PRIMARY KEY NOT NULL,
	`created_at_ms` integer NOT NULL,
	`updated_at_ms` integer NOT NULL,
	`current_version` integer NOT NULL,
	`oldest_version` integer NOT NULL,
	`max_versions` integer,
	`custom_metadata` blob,
	CONSTRAINT "secret_metadata_oldest_positive" CHECK("secret_metadata"."oldest_version" >= 1),
	CONSTRAINT "secret_metadata_current_not_older" CHECK("secret_metadata"."current_version" >= "secret_metadata"."oldest_version"),
	CONSTRAINT "secret_metadata_max_versions_positive" CHECK("secret_metadata"."max_versions" IS NULL OR "secret_metadata"."max_versions" >= 1)
);
--> statement-breakpoint
CREATE TABLE `secrets` (
	`path` text NOT NULL,
	`version` integer NOT NULL,
	`created_at_ms` integer NOT NULL,
	`deleted_at_ms` integer,
	`destroyed` integer DEFAULT false NOT NULL,
	`ciphertext` blob,
	PRIMARY KEY(`path`, `version`),
	FOREIGN KEY (`path`) REFERENCES `secret_metadata`(`path`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "secrets_version_positive" CHECK("secrets"."version" >= 1),
	CONSTRAINT "secrets_destroyed_no_data" CHECK(("secrets"."destroyed" = 1) = ("secrets"."ciphertext" IS NULL))
);
