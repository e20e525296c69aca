CREATE TABLE "transit_key_versions" (
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"created_at_ms" bigint NOT NULL,
	"keyring_term" integer NOT NULL,
	"sealed_material" "bytea" NOT NULL,
	CONSTRAINT "transit_key_versions_pk" PRIMARY KEY("name","version"),
	CONSTRAINT "transit_key_versions_version_positive" CHECK ("transit_key_versions"."version" >= 1),
	CONSTRAINT "transit_key_versions_term_positive" CHECK ("transit_key_versions"."keyring_term" >= 1)
);
--> statement-breakpoint
CREATE TABLE "transit_keys" (
	"name" text PRIMARY KEY NOT NULL,
	"created_at_ms" bigint NOT NULL,
	"updated_at_ms" bigint NOT NULL,
	"latest_version" integer NOT NULL,
	"min_decryption_version" integer NOT NULL,
	CONSTRAINT "transit_keys_latest_positive" CHECK ("transit_keys"."latest_version" >= 1),
	CONSTRAINT "transit_keys_min_decryption_in_range" CHECK ("transit_keys"."min_decryption_version" >= 1 AND "transit_keys"."min_decryption_version" <= "transit_keys"."latest_version")
);
--> statement-breakpoint
ALTER TABLE "transit_key_versions" ADD CONSTRAINT "transit_key_versions_name_fk" FOREIGN KEY ("name") REFERENCES "public"."transit_keys"("name") ON DELETE cascade ON UPDATE no action;