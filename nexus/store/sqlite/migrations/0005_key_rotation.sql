ALTER TABLE `root_key` ADD `split_shares` integer;--> statement-breakpoint
ALTER TABLE `root_key` ADD `split_threshold` integer;--> statement-breakpoint
ALTER TABLE `secret_metadata` ADD `metadata_key_term` integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE `secrets` ADD `key_term` integer DEFAULT 1 NOT NULL;