-- Custom SQL migration file, put your code below! --
-- Every committed change of a secret path notifies the change feed of every
-- Nexus on this database (`change_feed.ts`, ADR 0024): the store's writes all
-- insert, update or delete the path's `secret_metadata` row, so one row
-- trigger there covers them, delivered at commit and never on rollback. The
-- payload is `{"path", "version"}`: the current version after the change, 0
-- once the path is gone. Written to run again harmlessly (a migration test
-- re-applies the migrations after the quota counters).
CREATE OR REPLACE FUNCTION "spike_notify_secret_change"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('spike_secret_changes', json_build_object('path', OLD."path", 'version', 0)::text);
		RETURN OLD;
	END IF;
	PERFORM pg_notify('spike_secret_changes', json_build_object('path', NEW."path", 'version', NEW."current_version")::text);
	RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE TRIGGER "secret_metadata_notify_change"
AFTER INSERT OR UPDATE OR DELETE ON "secret_metadata"
FOR EACH ROW EXECUTE FUNCTION "spike_notify_secret_change"();
