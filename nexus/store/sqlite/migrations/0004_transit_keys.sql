CREATE TABLE `transit_key_versions` (
	`name` text NOT NULL,
	`version` integer NOT NULL,
	`created_at_ms` integer NOT NULL,
	`keyring_term` integer NOT NULL,
	`sealed_material` blob NOT NULL,
	PRIMARY KEY(`name`, `version`),
	FOREIGN KEY (`name`) REFERENCES `transit_keys`(`name`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "transit_key_versions_version_positive" CHECK("transit_key_versions"."version" >= 1),
	CONSTRAINT "transit_key_versions_term_positive" CHECK("transit_key_versions"."keyring_term" >= 1)
);
--> statement-breakpoint
CREATE TABLE `transit_keys` (
	`name` text PRIMARY KEY NOT NULL,
	`created_at_ms` integer NOT NULL,
	`updated_at_ms` integer NOT NULL,
	`latest_version` integer NOT NULL,
	`min_decryption_version` integer NOT NULL,
	CONSTRAINT "transit_keys_latest_positive" CHECK("transit_keys"."latest_version" >= 1),
	CONSTRAINT "transit_keys_min_decryption_in_range" CHECK("transit_keys"."min_decryption_version" >= 1 AND "transit_keys"."min_decryption_version" <= "transit_keys"."latest_version")
);
