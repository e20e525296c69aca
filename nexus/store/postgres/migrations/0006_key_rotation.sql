ALTER TABLE "root_key" ADD COLUMN "split_shares" integer;--> statement-breakpoint
ALTER TABLE "root_key" ADD COLUMN "split_threshold" integer;--> statement-breakpoint
ALTER TABLE "secret_metadata" ADD COLUMN "metadata_key_term" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "secrets" ADD COLUMN "key_term" integer DEFAULT 1 NOT NULL;