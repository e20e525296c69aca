CREATE TABLE "policies" (
	"name" text PRIMARY KEY NOT NULL,
	"spiffe_id_pattern" text NOT NULL,
	"path_pattern" text NOT NULL,
	"permissions" text NOT NULL,
	"created_at_ms" bigint NOT NULL,
	"updated_at_ms" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "root_key" (
	"id" integer PRIMARY KEY NOT NULL,
	"sealed_keyring" "bytea" NOT NULL,
	"last_generation" integer NOT NULL,
	"committed_generation" integer,
	"init_owner" text,
	"init_deadline_ms" bigint,
	"created_at_ms" bigint NOT NULL,
	"updated_at_ms" bigint NOT NULL,
	CONSTRAINT "root_key_single_row" CHECK ("root_key"."id" = 1),
	CONSTRAINT "root_key_generation_positive" CHECK ("root_key"."last_generation" >= 1),
	CONSTRAINT "root_key_committed_allocated" CHECK ("root_key"."committed_generation" IS NULL OR ("root_key"."committed_generation" >= 1 AND "root_key"."committed_generation" <= "root_key"."last_generation")),
	CONSTRAINT "root_key_init_owner_deadline" CHECK (("root_key"."init_owner" IS NULL) = ("root_key"."init_deadline_ms" IS NULL)),
	CONSTRAINT "root_key_init_until_commit" CHECK (("root_key"."committed_generation" IS NULL) = ("root_key"."init_owner" IS NOT NULL))
);
--> statement-breakpoint
CREATE TABLE "secret_metadata" (
	"path" text PRIMARY KEY NOT NULL,
	"created_at_ms" bigint NOT NULL,
	"updated_at_ms" bigint NOT NULL,
	"current_version" integer NOT NULL,
	"oldest_version" integer NOT NULL,
	"max_versions" integer,
	"custom_metadata" "bytea",
	CONSTRAINT "secret_metadata_oldest_positive" CHECK ("secret_metadata"."oldest_version" >= 1),
	CONSTRAINT "secret_metadata_current_not_older" CHECK ("secret_metadata"."current_version" >= "secret_metadata"."oldest_version"),
	CONSTRAINT "secret_metadata_max_versions_positive" CHECK ("secret_metadata"."max_versions" IS NULL OR "secret_metadata"."max_versions" >= 1)
);
--> statement-breakpoint
CREATE TABLE "secrets" (
	"path" text NOT NULL,
	"version" integer NOT NULL,
	"created_at_ms" bigint NOT NULL,
	"deleted_at_ms" bigint,
	"destroyed" boolean DEFAULT false NOT NULL,
	"ciphertext" "bytea",
	CONSTRAINT "secrets_pk" PRIMARY KEY("path","version"),
	CONSTRAINT "secrets_version_positive" CHECK ("secrets"."version" >= 1),
	CONSTRAINT "secrets_destroyed_no_data" CHECK ("secrets"."destroyed" = ("secrets"."ciphertext" IS NULL))
);
--> statement-breakpoint
ALTER TABLE "secrets" ADD CONSTRAINT "secrets_path_fk" FOREIGN KEY ("path") REFERENCES "public"."secret_metadata"("path") ON DELETE cascade ON UPDATE no action;