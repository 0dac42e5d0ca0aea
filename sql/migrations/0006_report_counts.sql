-- Reports that stay fast on a big database (issue 19).
--
-- The campaign_summary view of 0002 grouped every campaign's contacts and attempts
-- before its join, so a filter on one campaign never reached the scans: 863 ms for any
-- campaign of a 1.1M-contact database. Restricting the scans to the campaign's rows
-- (a LATERAL join) fixes the other campaigns, not the campaign itself: counting stays
-- proportional to its size (bench/reports.py prints the restricted scan of its large
-- campaign beside the summary), and a live view polling a 2M-contact campaign every
-- second would scan 6M rows a second.
--
-- So the counts are kept as data, in the transactions that change the rows, by
-- statement-level triggers rather than by each writer's SQL:
--   * every writer is covered without touching it: the claim, callbacks, reconciliation,
--     release, import, do-not-call, an operator's own UPDATE; a new writer cannot forget;
--   * the counts are transactional: any snapshot sees counts that equal the rows;
--   * writers never wait on each other for them: a statement only INSERTs its signed
--     deltas (one row per campaign and counter it changed), nothing is updated in
--     place, so there is no hot counter row to queue on and no new deadlock;
--   * the cost is one small INSERT per statement that changes rows (bench/reports.py
--     prints the claim latency), however many rows the statement touched.
-- Deltas are folded together now and then (compact_campaign_counts), so a campaign has
-- a few hundred rows here whatever its size, and its summary reads only those.

-- Signed deltas: the count of `counter` in campaign_id is the sum of n over its rows.
-- Counters:
--   contact:<state>                 contacts in that state
--   attempt:<state>                 attempts in that state (requested ... void)
--   status:<call_status>            attempts whose last CallStatus is that one
--   outcome:<outcome>               attempts by the outcome dialer.policy decided and
--                                   stored (call_attempts.outcome), 'rejected' and 'void'
--                                   included; outcome:undecided counts ended calls with
--                                   none stored (not the contact's current attempt, or
--                                   waiting for an async AMD result)
--   try:<attempt_no>:<outcome|state> the retry funnel: what attempt N ended in (its state
--                                   while it has no outcome)
--   talk_seconds, talked            sum of durations of completed calls, and how many
--                                   had a duration (the average talk time)
CREATE TABLE campaign_counts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    counter     text NOT NULL,
    n           bigint NOT NULL
);
-- The summary, the outcome breakdown and the funnel read one campaign's rows (named
-- queries campaign_summary, campaign_outcomes, retry_funnel); compaction finds them.
CREATE INDEX campaign_counts_campaign ON campaign_counts (campaign_id);

-- The counters one attempt row contributes to (n = 1, or a duration in seconds).
CREATE FUNCTION attempt_counters(
    state text, call_status text, outcome text, attempt_no integer, duration integer
) RETURNS TABLE (counter text, n bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT c.counter, c.n
    FROM (VALUES
        ('attempt:' || state, 1),
        ('status:' || call_status, 1),
        ('outcome:' || coalesce(outcome, CASE WHEN state = 'final' THEN 'undecided' END), 1),
        ('try:' || attempt_no || ':' || coalesce(outcome, state), 1),
        ('talk_seconds', CASE WHEN call_status = 'completed' THEN duration END),
        ('talked', CASE WHEN call_status = 'completed' AND duration IS NOT NULL THEN 1 END)
    ) AS c(counter, n)
    WHERE c.counter IS NOT NULL AND c.n IS NOT NULL AND c.n <> 0
$$;

-- Fold a campaign's deltas into one row per counter. Rows another compaction holds are
-- skipped (SKIP LOCKED), so compactions never wait for each other; deltas of
-- transactions not yet committed are invisible here and stay as they are. It runs
-- inside some writer's transaction, which must not fail because of it: in a
-- REPEATABLE READ transaction a concurrent compaction can make the DELETE a
-- serialization failure, and then this compaction is simply left to the next one.
CREATE FUNCTION compact_campaign_counts(campaign_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH gone AS (
        DELETE FROM campaign_counts
        WHERE id IN (SELECT id FROM campaign_counts WHERE campaign_id = ANY (campaign_ids)
                     FOR UPDATE SKIP LOCKED)
        RETURNING campaign_id, counter, n
    )
    INSERT INTO campaign_counts (campaign_id, counter, n)
    SELECT campaign_id, counter, sum(n) FROM gone GROUP BY campaign_id, counter
    HAVING sum(n) <> 0;
EXCEPTION WHEN serialization_failure THEN
    NULL;
END $$;

-- Record the deltas of one statement, summed per campaign and counter by its trigger;
-- zeros (an UPDATE that changed no state nets to nothing) are not written. About one
-- insert in 256 compacts its campaign, so each campaign keeps a few hundred rows.
-- Campaigns being deleted in this transaction are left out (their rows go with them
-- by cascade).
CREATE FUNCTION add_campaign_counts(campaign_ids bigint[], counters text[], ns bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    due bigint[];
BEGIN
    WITH added AS (
        INSERT INTO campaign_counts (campaign_id, counter, n)
        SELECT d.campaign_id, d.counter, d.n
        FROM unnest(campaign_ids, counters, ns) AS d(campaign_id, counter, n)
        JOIN campaigns c ON c.id = d.campaign_id
        WHERE d.n <> 0
        RETURNING id, campaign_id
    )
    SELECT array_agg(DISTINCT campaign_id) FILTER (WHERE id % 256 = 0) INTO due FROM added;
    IF due IS NOT NULL THEN
        PERFORM compact_campaign_counts(due);
    END IF;
END $$;

-- The triggers sum each statement's rows per campaign and counter before handing the
-- sums over: arrays of a few elements, however many rows the statement changed.
CREATE FUNCTION count_contact_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM add_campaign_counts(array_agg(campaign_id), array_agg(counter), array_agg(n))
        FROM (SELECT campaign_id, 'contact:' || state AS counter, count(*) AS n
              FROM new_rows GROUP BY 1, 2) AS added;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM add_campaign_counts(array_agg(campaign_id), array_agg(counter), array_agg(n))
        FROM (SELECT campaign_id, 'contact:' || state AS counter, -count(*) AS n
              FROM old_rows GROUP BY 1, 2) AS removed;
    ELSE
        PERFORM add_campaign_counts(array_agg(campaign_id), array_agg(counter), array_agg(n))
        FROM (SELECT campaign_id, 'contact:' || state AS counter, sum(sign) AS n
              FROM (SELECT campaign_id, state, 1 AS sign FROM new_rows
                    UNION ALL
                    SELECT campaign_id, state, -1 FROM old_rows) AS rows
              GROUP BY 1, 2) AS changed;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION count_attempt_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM add_campaign_counts(array_agg(campaign_id), array_agg(counter), array_agg(n))
        FROM (SELECT a.campaign_id, c.counter, sum(c.n)::bigint AS n
              FROM new_rows a,
                   attempt_counters(a.state, a.call_status, a.outcome, a.attempt_no,
                                    a.duration) c
              GROUP BY 1, 2) AS added;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM add_campaign_counts(array_agg(campaign_id), array_agg(counter), array_agg(n))
        FROM (SELECT a.campaign_id, c.counter, -sum(c.n)::bigint AS n
              FROM old_rows a,
                   attempt_counters(a.state, a.call_status, a.outcome, a.attempt_no,
                                    a.duration) c
              GROUP BY 1, 2) AS removed;
    ELSE
        PERFORM add_campaign_counts(array_agg(campaign_id), array_agg(counter), array_agg(n))
        FROM (SELECT a.campaign_id, c.counter, sum(a.sign * c.n)::bigint AS n
              FROM (SELECT campaign_id, state, call_status, outcome, attempt_no, duration,
                           1 AS sign FROM new_rows
                    UNION ALL
                    SELECT campaign_id, state, call_status, outcome, attempt_no, duration, -1
                    FROM old_rows) AS a,
                   attempt_counters(a.state, a.call_status, a.outcome, a.attempt_no,
                                    a.duration) c
              GROUP BY 1, 2) AS changed;
    END IF;
    RETURN NULL;
END $$;

-- Transition tables need one trigger per event.
CREATE TRIGGER contacts_counted_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_contact_changes();
CREATE TRIGGER contacts_counted_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_contact_changes();
CREATE TRIGGER contacts_counted_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_contact_changes();
CREATE TRIGGER attempts_counted_insert AFTER INSERT ON call_attempts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_attempt_changes();
CREATE TRIGGER attempts_counted_update AFTER UPDATE ON call_attempts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_attempt_changes();
CREATE TRIGGER attempts_counted_delete AFTER DELETE ON call_attempts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_attempt_changes();

-- Count everything again from the rows: for this migration, and after a bulk load
-- made with the triggers disabled (bench/reports.py). Writers wait meanwhile (the
-- lock), so no change falls between the count and the triggers.
CREATE FUNCTION rebuild_campaign_counts() RETURNS void
LANGUAGE sql AS $$
    LOCK TABLE contacts, call_attempts IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM campaign_counts;
    INSERT INTO campaign_counts (campaign_id, counter, n)
    SELECT campaign_id, 'contact:' || state, count(*) FROM contacts GROUP BY 1, 2;
    INSERT INTO campaign_counts (campaign_id, counter, n)
    SELECT a.campaign_id, c.counter, sum(c.n)
    FROM call_attempts a,
         attempt_counters(a.state, a.call_status, a.outcome, a.attempt_no, a.duration) c
    GROUP BY 1, 2;
$$;
SELECT rebuild_campaign_counts();

-- A campaign's counters, summed: the campaign's few hundred rows of campaign_counts,
-- found by campaign_counts_campaign (SQL, so the planner inlines it into the caller).
CREATE FUNCTION campaign_counters(campaign bigint) RETURNS TABLE (counter text, n bigint)
LANGUAGE sql STABLE AS $$
    SELECT counter, sum(n)::bigint FROM campaign_counts WHERE campaign_id = campaign
    GROUP BY counter HAVING sum(n) <> 0
$$;

-- One row per campaign: where its contacts are, and what its calls turned into, by the
-- outcome the policy decided and stored on each attempt (0002 derived "human" in SQL
-- and disagreed with dialer.policy.classify: AMD off counted as human, and so did
-- AnsweredBy=unknown of a campaign with unknown_is_machine). The columns of 0002 come
-- first, then the ones added here. busy and no_answer are outcomes too (a failed call
-- with SIP 486 is busy), call_failed is failed_transient + failed_permanent.
-- Filtered by name or campaign_id, the planner reads that campaign only:
--   Nested Loop  (one row of campaigns by campaigns_name_key)
--     -> Aggregate -> Index Scan using campaign_counts_campaign (its few hundred rows)
DROP VIEW campaign_summary;
CREATE VIEW campaign_summary AS
SELECT c.id AS campaign_id, c.name, c.state,
       k.contacts, k.pending, k.dialing, k.in_call, k.retry_wait, k.done, k.failed, k.skipped,
       k.attempts, k.answered,
       round(100.0 * k.answered / nullif(k.calls_ended, 0), 1) AS answer_rate_pct,
       k.human, k.machine, k.fax, k.busy, k.no_answer,
       k.failed_transient + k.failed_permanent AS call_failed, k.canceled, k.rejected,
       round(k.talk_seconds::numeric / nullif(k.talked, 0), 1) AS avg_talk_seconds,
       round(100.0 * (k.done + k.failed + k.skipped) / nullif(k.contacts, 0), 1)
           AS completion_pct,
       k.calls_ended, k.voicemail_left, k.answered_no_amd, k.failed_transient,
       k.failed_permanent, k.undecided, k.voided
FROM campaigns c
CROSS JOIN LATERAL (
    SELECT coalesce(sum(n) FILTER (WHERE counter LIKE 'contact:%'), 0)::bigint AS contacts,
           coalesce(max(n) FILTER (WHERE counter = 'contact:pending'), 0) AS pending,
           coalesce(max(n) FILTER (WHERE counter = 'contact:dialing'), 0) AS dialing,
           coalesce(max(n) FILTER (WHERE counter = 'contact:in_call'), 0) AS in_call,
           coalesce(max(n) FILTER (WHERE counter = 'contact:retry_wait'), 0) AS retry_wait,
           coalesce(max(n) FILTER (WHERE counter = 'contact:done'), 0) AS done,
           coalesce(max(n) FILTER (WHERE counter = 'contact:failed'), 0) AS failed,
           coalesce(max(n) FILTER (WHERE counter = 'contact:skipped'), 0) AS skipped,
           coalesce(sum(n) FILTER (WHERE counter LIKE 'attempt:%'
                                     AND counter <> 'attempt:void'), 0)::bigint AS attempts,
           coalesce(max(n) FILTER (WHERE counter = 'attempt:final'), 0) AS calls_ended,
           coalesce(max(n) FILTER (WHERE counter = 'attempt:rejected'), 0) AS rejected,
           coalesce(max(n) FILTER (WHERE counter = 'attempt:void'), 0) AS voided,
           coalesce(max(n) FILTER (WHERE counter = 'status:completed'), 0) AS answered,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:human'), 0) AS human,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:machine'), 0) AS machine,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:voicemail_left'), 0)
               AS voicemail_left,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:fax'), 0) AS fax,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:completed'), 0) AS answered_no_amd,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:busy'), 0) AS busy,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:no-answer'), 0) AS no_answer,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:failed_transient'), 0)
               AS failed_transient,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:failed_permanent'), 0)
               AS failed_permanent,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:canceled'), 0) AS canceled,
           coalesce(max(n) FILTER (WHERE counter = 'outcome:undecided'), 0) AS undecided,
           coalesce(max(n) FILTER (WHERE counter = 'talk_seconds'), 0) AS talk_seconds,
           coalesce(max(n) FILTER (WHERE counter = 'talked'), 0) AS talked
    FROM campaign_counters(c.id)
) k;

-- For the export's --since/--until (named query export_attempts): one day (144,721
-- attempts) of bench/reports.py's large campaign took 2.6 s with it and 16 to 52 s
-- without (every attempt of the table read). It replaces attempts_campaign (campaign_id,
-- attempt_no), whose second column no query used: lookups by campaign use the first
-- column of either, so claims keep the same number of indexes to write.
CREATE INDEX attempts_campaign_requested ON call_attempts (campaign_id, requested_at);
DROP INDEX attempts_campaign;

-- Every attempt of one campaign with its contact, requested in [since, until) (NULL:
-- unbounded): the rows of `report --csv` and of the attempt_detail view. SQL, so a call
-- with constants (the export) is inlined and planned for that campaign: a parallel
-- scan and hash join on a large one, index scans on a small one. The OFFSET 0 keeps
-- the query whole when the view calls it for each campaign (LATERAL): pulled up into
-- the view's join, a filter on the campaign's *name* left the planner guessing the
-- campaign's size, and it read every campaign's attempts and contacts (17 s for a
-- 20,000-contact campaign of bench/reports.py's database; 0.9 s with it).
CREATE FUNCTION attempt_rows(campaign bigint, since timestamptz DEFAULT NULL,
                             until timestamptz DEFAULT NULL)
RETURNS TABLE (contact_id bigint, phone text, contact_state text, contact_outcome text,
               contact_reason text, attempts_used integer, attempt_no integer,
               attempt_state text, call_sid text, call_status text, answered_by text,
               duration integer, sip_response_code integer, error_code integer,
               error_message text, outcome text, queue_time_ms integer,
               requested_at timestamptz, final_at timestamptz, attempt_id bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT k.id, k.phone, k.state, k.last_outcome, k.reason, k.attempts,
           a.attempt_no, a.state, a.call_sid, a.call_status, a.answered_by,
           a.duration, a.sip_response_code, a.error_code, a.error_message, a.outcome,
           a.queue_time_ms, a.requested_at, a.final_at, a.id
    FROM call_attempts a
    JOIN contacts k ON k.id = a.contact_id AND k.campaign_id = campaign
    WHERE a.campaign_id = campaign
      AND a.requested_at >= coalesce(since, '-infinity')
      AND a.requested_at < coalesce(until, 'infinity')
    OFFSET 0
$$;

-- Every attempt with its contact and campaign, for other reporting tools: the columns
-- of 0002, then the attempt's id and its campaign's. Filtered by campaign (name or
-- campaign_id), only that campaign's rows are read:
--   Nested Loop
--     -> Seq Scan on campaigns (Filter: name = ...)
--     -> Hash Join (a.contact_id = k.id)
--          -> Bitmap Heap Scan on call_attempts
--             <- Bitmap Index Scan on attempts_campaign_requested
--          -> Hash <- Index Scan using contacts_campaign_state on contacts
DROP VIEW attempt_detail;
CREATE VIEW attempt_detail AS
SELECT c.name AS campaign, r.contact_id, r.phone, r.contact_state, r.contact_outcome,
       r.contact_reason, r.attempts_used, r.attempt_no, r.attempt_state, r.call_sid,
       r.call_status, r.answered_by, r.duration, r.sip_response_code, r.error_code,
       r.error_message, r.outcome, r.queue_time_ms, r.requested_at, r.final_at,
       r.attempt_id, c.id AS campaign_id
FROM campaigns c
CROSS JOIN LATERAL attempt_rows(c.id) r;
