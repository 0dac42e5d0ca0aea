-- A contact's campaign is checked once per statement, not once per row.
--
-- Imports COPY contacts straight into this table at up to 100,000 rows a second
-- (issue 18). The foreign key to campaigns looked its campaign up (and locked it FOR
-- KEY SHARE) for every row: about 3.6 µs of the 10-13 µs Postgres spends on a
-- COPYed row (bench/import_sql.py), while an import's rows all name one campaign.
-- The same rules hold, enforced by triggers:
--   * a contact names a campaign that exists: checked after each INSERT statement
--     for the distinct campaigns of its rows, which are locked FOR KEY SHARE as the
--     foreign key locked them (a campaign being deleted is waited for, then found
--     gone: the statement fails);
--   * a contact never moves to another campaign (nothing moves one; the foreign key
--     would have checked the new one);
--   * deleting a campaign deletes its contacts (was ON DELETE CASCADE), and through
--     their own foreign key their attempts.
-- The error is a foreign_key_violation, as before.

ALTER TABLE contacts DROP CONSTRAINT contacts_campaign_id_fkey;

CREATE FUNCTION contacts_campaign_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    SELECT n.campaign_id INTO missing
    FROM (SELECT DISTINCT campaign_id FROM new_contacts) AS n
    WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = n.campaign_id FOR KEY SHARE)
    LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('contacts: campaign %s does not exist', missing),
            TABLE = 'contacts', CONSTRAINT = 'contacts_campaign_exists';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_campaign_exists AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_campaign_exists();

CREATE FUNCTION contacts_campaign_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE foreign_key_violation USING
        MESSAGE = format('contact %s cannot move to another campaign', OLD.id),
        TABLE = 'contacts', CONSTRAINT = 'contacts_campaign_exists';
END $$;

CREATE TRIGGER contacts_campaign_fixed BEFORE UPDATE OF campaign_id ON contacts
    FOR EACH ROW WHEN (OLD.campaign_id IS DISTINCT FROM NEW.campaign_id)
    EXECUTE FUNCTION contacts_campaign_fixed();

-- After the campaign's row is gone, not before: deleting it waits for the inserts
-- holding its KEY SHARE lock, and this DELETE, a new statement, then sees their rows.
CREATE FUNCTION campaigns_delete_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contacts WHERE campaign_id = OLD.id;
    RETURN NULL;
END $$;

CREATE TRIGGER campaigns_delete_contacts AFTER DELETE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION campaigns_delete_contacts();
