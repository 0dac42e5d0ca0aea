-- What a claim and a call's events cost Postgres (issue 15: the ceiling with a cap).
--
-- Measured per claim of 200 contacts and per batch of 200 answers (mark_live), on a
-- database with 40,000 earlier calls (EXPLAIN (ANALYZE) trigger times): the counting
-- triggers of 0006 worked out the six counters of every old and every new row
-- (attempt_counters called 400 times for an UPDATE of 200 attempts, then summed), and
-- the compliance record's phone trigger ran once per record although the claim always
-- gives the number.

-- ---- counting: group the rows first, then work out their counters ----

-- The UPDATE path of the counters of call_attempts. Rows are grouped by what the
-- counters read (campaign, state, status, outcome, attempt number, and the duration
-- only of completed calls, the one case a counter reads it), old rows counting -1 and
-- new ones +1; a group whose rows cancel (an UPDATE that changed no counted column:
-- statuses, sent_at, queue time, ...) is dropped before its counters are worked out.
-- attempt_counters runs once per remaining group, its n multiplied by the group's
-- rows: the same sums as 0006's per-row version (a group of k rows adds k times each
-- row's counters), for a handful of groups instead of twice the rows.
CREATE FUNCTION count_attempt_updates() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_campaign_counts(array_agg(campaign_id), array_agg(counter), array_agg(n))
    FROM (SELECT g.campaign_id, c.counter, sum(g.rows * c.n)::bigint AS n
          FROM (SELECT campaign_id, state, call_status, outcome, attempt_no, talk,
                       sum(sign) AS rows
                FROM (SELECT campaign_id, state, call_status, outcome, attempt_no,
                             CASE WHEN call_status = 'completed' THEN duration END AS talk,
                             1 AS sign
                      FROM new_rows
                      UNION ALL
                      SELECT campaign_id, state, call_status, outcome, attempt_no,
                             CASE WHEN call_status = 'completed' THEN duration END, -1
                      FROM old_rows) AS r
                GROUP BY 1, 2, 3, 4, 5, 6
                HAVING sum(sign) <> 0) AS g,
               attempt_counters(g.state, g.call_status, g.outcome, g.attempt_no, g.talk) c
          GROUP BY 1, 2) AS changed
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

-- The UPDATE path of the counters of contacts: as 0006 (one counter, its state), with
-- the groups that cancel dropped before anything is handed over, and no call at all
-- when every group cancelled (a claim's deferrals, a location stored: no state moved).
CREATE FUNCTION count_contact_updates() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_campaign_counts(array_agg(campaign_id), array_agg(counter), array_agg(n))
    FROM (SELECT campaign_id, 'contact:' || state AS counter, sum(sign) AS n
          FROM (SELECT campaign_id, state, 1 AS sign FROM new_rows
                UNION ALL
                SELECT campaign_id, state, -1 FROM old_rows) AS rows
          GROUP BY 1, 2
          HAVING sum(sign) <> 0) AS changed
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

-- The INSERT path of the counters of call_attempts, grouped the same way: a claim's 200
-- new attempts (requested, no status, no outcome) are one group per campaign and
-- attempt number. Only call_attempts: the INSERT path of contacts (imports) is left
-- to count_contact_changes of 0006.
CREATE FUNCTION count_attempt_inserts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM add_campaign_counts(array_agg(campaign_id), array_agg(counter), array_agg(n))
    FROM (SELECT g.campaign_id, c.counter, sum(g.rows * c.n)::bigint AS n
          FROM (SELECT campaign_id, state, call_status, outcome, attempt_no,
                       CASE WHEN call_status = 'completed' THEN duration END AS talk,
                       count(*) AS rows
                FROM new_rows
                GROUP BY 1, 2, 3, 4, 5, 6) AS g,
               attempt_counters(g.state, g.call_status, g.outcome, g.attempt_no, g.talk) c
          GROUP BY 1, 2) AS added
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

DROP TRIGGER attempts_counted_insert ON call_attempts;
CREATE TRIGGER attempts_counted_insert AFTER INSERT ON call_attempts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_attempt_inserts();
DROP TRIGGER attempts_counted_update ON call_attempts;
CREATE TRIGGER attempts_counted_update AFTER UPDATE ON call_attempts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_attempt_updates();
DROP TRIGGER contacts_counted_update ON contacts;
CREATE TRIGGER contacts_counted_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_contact_updates();

-- ---- the compliance record's number ----

-- The claim writes every record with its number; the trigger of 0008 that fills in a
-- missing one (a record written by a program, or by code from before caps) now fires
-- only for those, not once per claimed contact.
DROP TRIGGER attempt_compliance_phone ON attempt_compliance;
CREATE TRIGGER attempt_compliance_phone BEFORE INSERT ON attempt_compliance
    FOR EACH ROW WHEN (NEW.phone IS NULL) EXECUTE FUNCTION attempt_compliance_phone();
