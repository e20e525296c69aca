CREATE TABLE `root_key` (
	`id` integer PRIMARY KEY NOT NULL,
	`sealed_keyring` blob NOT NULL,
	`last_generation` integer NOT NULL,
	`committed_generation` integer,
	`init_owner` text,
	`init_deadline_ms` integer,
	`created_at_ms` integer NOT NULL,
	`updated_at_ms` integer NOT NULL,
	CONSTRAINT "root_key_single_row" CHECK("root_key"."id" = 1),
	CONSTRAINT "root_key_generation_positive" CHECK("root_key"."last_generation" >= 1),
	CONSTRAINT "root_key_committed_allocated" CHECK("root_key"."committed_generation" IS NULL OR ("root_key"."committed_generation" >= 1 AND "root_key"."committed_generation" <= "root_key"."last_generation")),
	CONSTRAINT "root_key_init_owner_deadline" CHECK(("root_key"."init_owner" IS NULL) = ("root_key"."init_deadline_ms" IS NULL)),
	CONSTRAINT "root_key_init_until_commit" CHECK(("root_key"."committed_generation" IS NULL) = ("root_key"."init_owner" IS NOT NULL))
);
