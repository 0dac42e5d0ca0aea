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
               requested_at timestamptz, final_at timestamptz, sent_at timestamptz,
               zones text[], zone_source text, states text[], state_sources text[],
               local_times text[], rule_packs text[], rules text[],
               open_until timestamptz, attempt_id bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT k.id, k.phone, k.state, k.last_outcome, k.reason, k.attempts,
           a.attempt_no, a.state, a.call_sid, a.call_status, a.answered_by,
           a.duration, a.sip_response_code, a.error_code, a.error_message, a.outcome,
           a.queue_time_ms, a.requested_at, a.final_at, a.sent_at,
           r.zones, r.zone_source, r.states, r.state_sources, r.local_times,
           r.rule_packs, r.rules, r.open_until, a.id
    FROM call_attempts a
    JOIN contacts k ON k.id = a.contact_id AND k.campaign_id = campaign
    LEFT JOIN attempt_compliance r ON r.attempt_id = a.id
    WHERE a.campaign_id = campaign
      AND a.requested_at >= coalesce(since, '-infinity')
      AND a.requested_at < coalesce(until, 'infinity')
    OFFSET 0
$$;

-- Every attempt with its contact and campaign, for other reporting tools: the columns
-- of 0005 (those of 0002, then the compliance record), then the attempt's id and its
-- campaign's. Filtered by campaign (name or campaign_id), only that campaign's rows
-- are read:
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
       r.sent_at, r.zones, r.zone_source, r.states, r.state_sources, r.local_times,
       r.rule_packs, r.rules, r.open_until, r.attempt_id, c.id AS campaign_id
FROM campaigns c
CROSS JOIN LATERAL attempt_rows(c.id) r;

-- ---- outcomes by the recipient's local hour, zone and country ----

-- The country of each time zone, for reports by country. Every zone of tzdata's
-- zone.tab (2025b, public domain) with its ISO 3166 code, and the old names the
-- phonenumbers library (9.0) still gives for some numbers (Asia/Calcutta ...), with the
-- country of the numbers they serve; made by sql/make_zone_countries.py. A zone not
-- listed (a link such as US/Eastern from a CSV column) has no country.
CREATE TABLE time_zone_countries (
    zone    text PRIMARY KEY,
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$')
);
INSERT INTO time_zone_countries (zone, country) VALUES
    ('Africa/Abidjan', 'CI'), ('Africa/Accra', 'GH'), ('Africa/Addis_Ababa', 'ET'),
    ('Africa/Algiers', 'DZ'), ('Africa/Asmara', 'ER'), ('Africa/Asmera', 'ER'),
    ('Africa/Bamako', 'ML'), ('Africa/Bangui', 'CF'), ('Africa/Banjul', 'GM'),
    ('Africa/Bissau', 'GW'), ('Africa/Blantyre', 'MW'), ('Africa/Brazzaville', 'CG'),
    ('Africa/Bujumbura', 'BI'), ('Africa/Cairo', 'EG'), ('Africa/Casablanca', 'MA'),
    ('Africa/Ceuta', 'ES'), ('Africa/Conakry', 'GN'), ('Africa/Dakar', 'SN'),
    ('Africa/Dar_es_Salaam', 'TZ'), ('Africa/Djibouti', 'DJ'), ('Africa/Douala', 'CM'),
    ('Africa/El_Aaiun', 'EH'), ('Africa/Freetown', 'SL'), ('Africa/Gaborone', 'BW'),
    ('Africa/Harare', 'ZW'), ('Africa/Johannesburg', 'ZA'), ('Africa/Juba', 'SS'),
    ('Africa/Kampala', 'UG'), ('Africa/Khartoum', 'SD'), ('Africa/Kigali', 'RW'),
    ('Africa/Kinshasa', 'CD'), ('Africa/Lagos', 'NG'), ('Africa/Libreville', 'GA'),
    ('Africa/Lome', 'TG'), ('Africa/Luanda', 'AO'), ('Africa/Lubumbashi', 'CD'),
    ('Africa/Lusaka', 'ZM'), ('Africa/Malabo', 'GQ'), ('Africa/Maputo', 'MZ'),
    ('Africa/Maseru', 'LS'), ('Africa/Mbabane', 'SZ'), ('Africa/Mogadishu', 'SO'),
    ('Africa/Monrovia', 'LR'), ('Africa/Nairobi', 'KE'), ('Africa/Ndjamena', 'TD'),
    ('Africa/Niamey', 'NE'), ('Africa/Nouakchott', 'MR'), ('Africa/Ouagadougou', 'BF'),
    ('Africa/Porto-Novo', 'BJ'), ('Africa/Sao_Tome', 'ST'), ('Africa/Tripoli', 'LY'),
    ('Africa/Tunis', 'TN'), ('Africa/Windhoek', 'NA'), ('America/Adak', 'US'),
    ('America/Anchorage', 'US'), ('America/Anguilla', 'AI'), ('America/Antigua', 'AG'),
    ('America/Araguaina', 'BR'), ('America/Argentina/Buenos_Aires', 'AR'),
    ('America/Argentina/Catamarca', 'AR'), ('America/Argentina/Cordoba', 'AR'),
    ('America/Argentina/Jujuy', 'AR'), ('America/Argentina/La_Rioja', 'AR'),
    ('America/Argentina/Mendoza', 'AR'), ('America/Argentina/Rio_Gallegos', 'AR'),
    ('America/Argentina/Salta', 'AR'), ('America/Argentina/San_Juan', 'AR'),
    ('America/Argentina/San_Luis', 'AR'), ('America/Argentina/Tucuman', 'AR'),
    ('America/Argentina/Ushuaia', 'AR'), ('America/Aruba', 'AW'),
    ('America/Asuncion', 'PY'), ('America/Atikokan', 'CA'), ('America/Bahia', 'BR'),
    ('America/Bahia_Banderas', 'MX'), ('America/Barbados', 'BB'), ('America/Belem', 'BR'),
    ('America/Belize', 'BZ'), ('America/Blanc-Sablon', 'CA'), ('America/Boa_Vista', 'BR'),
    ('America/Bogota', 'CO'), ('America/Boise', 'US'), ('America/Buenos_Aires', 'AR'),
    ('America/Cambridge_Bay', 'CA'), ('America/Campo_Grande', 'BR'),
    ('America/Cancun', 'MX'), ('America/Caracas', 'VE'), ('America/Cayenne', 'GF'),
    ('America/Cayman', 'KY'), ('America/Chicago', 'US'), ('America/Chihuahua', 'MX'),
    ('America/Ciudad_Juarez', 'MX'), ('America/Costa_Rica', 'CR'),
    ('America/Coyhaique', 'CL'), ('America/Creston', 'CA'), ('America/Cuiaba', 'BR'),
    ('America/Curacao', 'CW'), ('America/Danmarkshavn', 'GL'), ('America/Dawson', 'CA'),
    ('America/Dawson_Creek', 'CA'), ('America/Denver', 'US'), ('America/Detroit', 'US'),
    ('America/Dominica', 'DM'), ('America/Edmonton', 'CA'), ('America/Eirunepe', 'BR'),
    ('America/El_Salvador', 'SV'), ('America/Fort_Nelson', 'CA'),
    ('America/Fortaleza', 'BR'), ('America/Glace_Bay', 'CA'), ('America/Godthab', 'GL'),
    ('America/Goose_Bay', 'CA'), ('America/Grand_Turk', 'TC'), ('America/Grenada', 'GD'),
    ('America/Guadeloupe', 'GP'), ('America/Guatemala', 'GT'), ('America/Guayaquil', 'EC'),
    ('America/Guyana', 'GY'), ('America/Halifax', 'CA'), ('America/Havana', 'CU'),
    ('America/Hermosillo', 'MX'), ('America/Indiana/Indianapolis', 'US'),
    ('America/Indiana/Knox', 'US'), ('America/Indiana/Marengo', 'US'),
    ('America/Indiana/Petersburg', 'US'), ('America/Indiana/Tell_City', 'US'),
    ('America/Indiana/Vevay', 'US'), ('America/Indiana/Vincennes', 'US'),
    ('America/Indiana/Winamac', 'US'), ('America/Inuvik', 'CA'), ('America/Iqaluit', 'CA'),
    ('America/Jamaica', 'JM'), ('America/Juneau', 'US'),
    ('America/Kentucky/Louisville', 'US'), ('America/Kentucky/Monticello', 'US'),
    ('America/Kralendijk', 'BQ'), ('America/La_Paz', 'BO'), ('America/Lima', 'PE'),
    ('America/Los_Angeles', 'US'), ('America/Lower_Princes', 'SX'),
    ('America/Maceio', 'BR'), ('America/Managua', 'NI'), ('America/Manaus', 'BR'),
    ('America/Marigot', 'MF'), ('America/Martinique', 'MQ'), ('America/Matamoros', 'MX'),
    ('America/Mazatlan', 'MX'), ('America/Menominee', 'US'), ('America/Merida', 'MX'),
    ('America/Metlakatla', 'US'), ('America/Mexico_City', 'MX'),
    ('America/Miquelon', 'PM'), ('America/Moncton', 'CA'), ('America/Monterrey', 'MX'),
    ('America/Montevideo', 'UY'), ('America/Montserrat', 'MS'), ('America/Nassau', 'BS'),
    ('America/New_York', 'US'), ('America/Nome', 'US'), ('America/Noronha', 'BR'),
    ('America/North_Dakota/Beulah', 'US'), ('America/North_Dakota/Center', 'US'),
    ('America/North_Dakota/New_Salem', 'US'), ('America/Nuuk', 'GL'),
    ('America/Ojinaga', 'MX'), ('America/Panama', 'PA'), ('America/Paramaribo', 'SR'),
    ('America/Phoenix', 'US'), ('America/Port-au-Prince', 'HT'),
    ('America/Port_of_Spain', 'TT'), ('America/Porto_Velho', 'BR'),
    ('America/Puerto_Rico', 'PR'), ('America/Punta_Arenas', 'CL'),
    ('America/Rankin_Inlet', 'CA'), ('America/Recife', 'BR'), ('America/Regina', 'CA'),
    ('America/Resolute', 'CA'), ('America/Rio_Branco', 'BR'), ('America/Santarem', 'BR'),
    ('America/Santiago', 'CL'), ('America/Santo_Domingo', 'DO'),
    ('America/Sao_Paulo', 'BR'), ('America/Scoresbysund', 'GL'), ('America/Sitka', 'US'),
    ('America/St_Barthelemy', 'BL'), ('America/St_Johns', 'CA'),
    ('America/St_Kitts', 'KN'), ('America/St_Lucia', 'LC'), ('America/St_Thomas', 'VI'),
    ('America/St_Vincent', 'VC'), ('America/Swift_Current', 'CA'),
    ('America/Tegucigalpa', 'HN'), ('America/Thule', 'GL'), ('America/Tijuana', 'MX'),
    ('America/Toronto', 'CA'), ('America/Tortola', 'VG'), ('America/Vancouver', 'CA'),
    ('America/Whitehorse', 'CA'), ('America/Winnipeg', 'CA'), ('America/Yakutat', 'US'),
    ('Antarctica/Casey', 'AQ'), ('Antarctica/Davis', 'AQ'),
    ('Antarctica/DumontDUrville', 'AQ'), ('Antarctica/Macquarie', 'AU'),
    ('Antarctica/Mawson', 'AQ'), ('Antarctica/McMurdo', 'AQ'), ('Antarctica/Palmer', 'AQ'),
    ('Antarctica/Rothera', 'AQ'), ('Antarctica/Syowa', 'AQ'), ('Antarctica/Troll', 'AQ'),
    ('Antarctica/Vostok', 'AQ'), ('Arctic/Longyearbyen', 'SJ'), ('Asia/Aden', 'YE'),
    ('Asia/Almaty', 'KZ'), ('Asia/Amman', 'JO'), ('Asia/Anadyr', 'RU'),
    ('Asia/Aqtau', 'KZ'), ('Asia/Aqtobe', 'KZ'), ('Asia/Ashgabat', 'TM'),
    ('Asia/Atyrau', 'KZ'), ('Asia/Baghdad', 'IQ'), ('Asia/Bahrain', 'BH'),
    ('Asia/Baku', 'AZ'), ('Asia/Bangkok', 'TH'), ('Asia/Barnaul', 'RU'),
    ('Asia/Beirut', 'LB'), ('Asia/Bishkek', 'KG'), ('Asia/Brunei', 'BN'),
    ('Asia/Calcutta', 'IN'), ('Asia/Chita', 'RU'), ('Asia/Choibalsan', 'MN'),
    ('Asia/Colombo', 'LK'), ('Asia/Damascus', 'SY'), ('Asia/Dhaka', 'BD'),
    ('Asia/Dili', 'TL'), ('Asia/Dubai', 'AE'), ('Asia/Dushanbe', 'TJ'),
    ('Asia/Famagusta', 'CY'), ('Asia/Gaza', 'PS'), ('Asia/Hebron', 'PS'),
    ('Asia/Ho_Chi_Minh', 'VN'), ('Asia/Hong_Kong', 'HK'), ('Asia/Hovd', 'MN'),
    ('Asia/Irkutsk', 'RU'), ('Asia/Jakarta', 'ID'), ('Asia/Jayapura', 'ID'),
    ('Asia/Jerusalem', 'IL'), ('Asia/Kabul', 'AF'), ('Asia/Kamchatka', 'RU'),
    ('Asia/Karachi', 'PK'), ('Asia/Kathmandu', 'NP'), ('Asia/Katmandu', 'NP'),
    ('Asia/Khandyga', 'RU'), ('Asia/Kolkata', 'IN'), ('Asia/Krasnoyarsk', 'RU'),
    ('Asia/Kuala_Lumpur', 'MY'), ('Asia/Kuching', 'MY'), ('Asia/Kuwait', 'KW'),
    ('Asia/Macau', 'MO'), ('Asia/Magadan', 'RU'), ('Asia/Makassar', 'ID'),
    ('Asia/Manila', 'PH'), ('Asia/Muscat', 'OM'), ('Asia/Nicosia', 'CY'),
    ('Asia/Novokuznetsk', 'RU'), ('Asia/Novosibirsk', 'RU'), ('Asia/Omsk', 'RU'),
    ('Asia/Oral', 'KZ'), ('Asia/Phnom_Penh', 'KH'), ('Asia/Pontianak', 'ID'),
    ('Asia/Pyongyang', 'KP'), ('Asia/Qatar', 'QA'), ('Asia/Qostanay', 'KZ'),
    ('Asia/Qyzylorda', 'KZ'), ('Asia/Rangoon', 'MM'), ('Asia/Riyadh', 'SA'),
    ('Asia/Sakhalin', 'RU'), ('Asia/Samarkand', 'UZ'), ('Asia/Seoul', 'KR'),
    ('Asia/Shanghai', 'CN'), ('Asia/Singapore', 'SG'), ('Asia/Srednekolymsk', 'RU'),
    ('Asia/Taipei', 'TW'), ('Asia/Tashkent', 'UZ'), ('Asia/Tbilisi', 'GE'),
    ('Asia/Tehran', 'IR'), ('Asia/Thimphu', 'BT'), ('Asia/Tokyo', 'JP'),
    ('Asia/Tomsk', 'RU'), ('Asia/Ulaanbaatar', 'MN'), ('Asia/Urumqi', 'CN'),
    ('Asia/Ust-Nera', 'RU'), ('Asia/Vientiane', 'LA'), ('Asia/Vladivostok', 'RU'),
    ('Asia/Yakutsk', 'RU'), ('Asia/Yangon', 'MM'), ('Asia/Yekaterinburg', 'RU'),
    ('Asia/Yerevan', 'AM'), ('Atlantic/Azores', 'PT'), ('Atlantic/Bermuda', 'BM'),
    ('Atlantic/Canary', 'ES'), ('Atlantic/Cape_Verde', 'CV'), ('Atlantic/Faeroe', 'FO'),
    ('Atlantic/Faroe', 'FO'), ('Atlantic/Madeira', 'PT'), ('Atlantic/Reykjavik', 'IS'),
    ('Atlantic/South_Georgia', 'GS'), ('Atlantic/St_Helena', 'SH'),
    ('Atlantic/Stanley', 'FK'), ('Australia/Adelaide', 'AU'), ('Australia/Brisbane', 'AU'),
    ('Australia/Broken_Hill', 'AU'), ('Australia/Darwin', 'AU'), ('Australia/Eucla', 'AU'),
    ('Australia/Hobart', 'AU'), ('Australia/Lindeman', 'AU'),
    ('Australia/Lord_Howe', 'AU'), ('Australia/Melbourne', 'AU'),
    ('Australia/Perth', 'AU'), ('Australia/Sydney', 'AU'), ('Europe/Amsterdam', 'NL'),
    ('Europe/Andorra', 'AD'), ('Europe/Astrakhan', 'RU'), ('Europe/Athens', 'GR'),
    ('Europe/Belgrade', 'RS'), ('Europe/Berlin', 'DE'), ('Europe/Bratislava', 'SK'),
    ('Europe/Brussels', 'BE'), ('Europe/Bucharest', 'RO'), ('Europe/Budapest', 'HU'),
    ('Europe/Busingen', 'DE'), ('Europe/Chisinau', 'MD'), ('Europe/Copenhagen', 'DK'),
    ('Europe/Dublin', 'IE'), ('Europe/Gibraltar', 'GI'), ('Europe/Guernsey', 'GG'),
    ('Europe/Helsinki', 'FI'), ('Europe/Isle_of_Man', 'IM'), ('Europe/Istanbul', 'TR'),
    ('Europe/Jersey', 'JE'), ('Europe/Kaliningrad', 'RU'), ('Europe/Kirov', 'RU'),
    ('Europe/Kyiv', 'UA'), ('Europe/Lisbon', 'PT'), ('Europe/Ljubljana', 'SI'),
    ('Europe/London', 'GB'), ('Europe/Luxembourg', 'LU'), ('Europe/Madrid', 'ES'),
    ('Europe/Malta', 'MT'), ('Europe/Mariehamn', 'AX'), ('Europe/Minsk', 'BY'),
    ('Europe/Monaco', 'MC'), ('Europe/Moscow', 'RU'), ('Europe/Oslo', 'NO'),
    ('Europe/Paris', 'FR'), ('Europe/Podgorica', 'ME'), ('Europe/Prague', 'CZ'),
    ('Europe/Riga', 'LV'), ('Europe/Rome', 'IT'), ('Europe/Samara', 'RU'),
    ('Europe/San_Marino', 'SM'), ('Europe/Sarajevo', 'BA'), ('Europe/Saratov', 'RU'),
    ('Europe/Simferopol', 'UA'), ('Europe/Skopje', 'MK'), ('Europe/Sofia', 'BG'),
    ('Europe/Stockholm', 'SE'), ('Europe/Tallinn', 'EE'), ('Europe/Tirane', 'AL'),
    ('Europe/Ulyanovsk', 'RU'), ('Europe/Vaduz', 'LI'), ('Europe/Vatican', 'VA'),
    ('Europe/Vienna', 'AT'), ('Europe/Vilnius', 'LT'), ('Europe/Volgograd', 'RU'),
    ('Europe/Warsaw', 'PL'), ('Europe/Zagreb', 'HR'), ('Europe/Zurich', 'CH'),
    ('Indian/Antananarivo', 'MG'), ('Indian/Chagos', 'IO'), ('Indian/Christmas', 'CX'),
    ('Indian/Cocos', 'CC'), ('Indian/Comoro', 'KM'), ('Indian/Kerguelen', 'TF'),
    ('Indian/Mahe', 'SC'), ('Indian/Maldives', 'MV'), ('Indian/Mauritius', 'MU'),
    ('Indian/Mayotte', 'YT'), ('Indian/Reunion', 'RE'), ('Pacific/Apia', 'WS'),
    ('Pacific/Auckland', 'NZ'), ('Pacific/Bougainville', 'PG'), ('Pacific/Chatham', 'NZ'),
    ('Pacific/Chuuk', 'FM'), ('Pacific/Easter', 'CL'), ('Pacific/Efate', 'VU'),
    ('Pacific/Enderbury', 'KI'), ('Pacific/Fakaofo', 'TK'), ('Pacific/Fiji', 'FJ'),
    ('Pacific/Funafuti', 'TV'), ('Pacific/Galapagos', 'EC'), ('Pacific/Gambier', 'PF'),
    ('Pacific/Guadalcanal', 'SB'), ('Pacific/Guam', 'GU'), ('Pacific/Honolulu', 'US'),
    ('Pacific/Kanton', 'KI'), ('Pacific/Kiritimati', 'KI'), ('Pacific/Kosrae', 'FM'),
    ('Pacific/Kwajalein', 'MH'), ('Pacific/Majuro', 'MH'), ('Pacific/Marquesas', 'PF'),
    ('Pacific/Midway', 'UM'), ('Pacific/Nauru', 'NR'), ('Pacific/Niue', 'NU'),
    ('Pacific/Norfolk', 'NF'), ('Pacific/Noumea', 'NC'), ('Pacific/Pago_Pago', 'AS'),
    ('Pacific/Palau', 'PW'), ('Pacific/Pitcairn', 'PN'), ('Pacific/Pohnpei', 'FM'),
    ('Pacific/Ponape', 'FM'), ('Pacific/Port_Moresby', 'PG'), ('Pacific/Rarotonga', 'CK'),
    ('Pacific/Saipan', 'MP'), ('Pacific/Tahiti', 'PF'), ('Pacific/Tarawa', 'KI'),
    ('Pacific/Tongatapu', 'TO'), ('Pacific/Truk', 'FM'), ('Pacific/Wake', 'UM'),
    ('Pacific/Wallis', 'WF');

-- The recipient's local hour at an attempt's request, from its compliance record
-- (local_times: one ISO-8601 local time per zone the contact may be in): the hour every
-- one of them shows, or NULL when they differ (a number whose zones are an hour or more
-- apart, such as an Australian mobile): such calls are counted apart, not guessed. One
-- zone is read in place (the function is inlined); several are compared by
-- local_hours_agree, about 9 us a call.
CREATE FUNCTION local_hours_agree(local_times text[]) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN min(substr(t, 12, 2)) = max(substr(t, 12, 2))
                THEN min(substr(t, 12, 2))::integer END
    FROM unnest(local_times) AS t
$$;

CREATE FUNCTION local_hour(local_times text[]) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(local_times) = 1 THEN substr(local_times[1], 12, 2)::integer
                ELSE local_hours_agree(local_times) END
$$;

-- The country most of the zones are in: an Australian mobile's eight zones include
-- Christmas Island's and the Cocos Islands' (CX, CC) but six are Australia's. NULL when
-- no zone is in time_zone_countries or two countries have as many zones.
CREATE FUNCTION zones_country(zones text[]) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN count(*) = 1
                  OR (array_agg(n ORDER BY n DESC))[1] > (array_agg(n ORDER BY n DESC))[2]
                THEN (array_agg(country ORDER BY n DESC))[1] END
    FROM (SELECT c.country, count(*) AS n
          FROM unnest(zones) AS z(zone)
          JOIN time_zone_countries c ON c.zone = z.zone
          GROUP BY c.country) AS counted
$$;

-- The ended calls of one campaign that have a compliance record (attempts made before
-- migration 0005 have none), grouped by the recipient's local hour ('local_hour'), by
-- the zones the contact may be in ('zones', space-separated) or by their country
-- ('country'); key NULL: the zones disagree on the hour, or have no country. Counts by
-- the outcome the policy stored, as campaign_summary does. The campaign's calls are
-- grouped by (zones, hour, outcome) first, so the per-zone work is done per group.
CREATE FUNCTION outcomes_by(campaign bigint, dimension text)
RETURNS TABLE (key text, calls bigint, answered bigint, answer_rate_pct numeric,
               human bigint, machine bigint, voicemail_left bigint, answered_no_amd bigint,
               fax bigint, busy bigint, no_answer bigint, failed bigint, canceled bigint,
               undecided bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH places AS (
        SELECT r.zones, local_hour(r.local_times) AS local_hour, a.outcome,
               a.call_status = 'completed' AS answered, count(*) AS n
        FROM call_attempts a
        JOIN attempt_compliance r ON r.attempt_id = a.id
        WHERE a.campaign_id = campaign AND a.state = 'final'
        GROUP BY 1, 2, 3, 4
    ), keyed AS (
        SELECT CASE dimension WHEN 'local_hour' THEN p.local_hour::text
                              WHEN 'zones' THEN array_to_string(p.zones, ' ')
                              WHEN 'country' THEN zones_country(p.zones) END AS key,
               p.outcome, p.answered, p.n
        FROM places p
    )
    SELECT key, sum(n)::bigint AS calls,
           coalesce(sum(n) FILTER (WHERE answered), 0)::bigint AS answered,
           round(100.0 * coalesce(sum(n) FILTER (WHERE answered), 0) / sum(n), 1),
           coalesce(sum(n) FILTER (WHERE outcome = 'human'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE outcome = 'machine'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE outcome = 'voicemail_left'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE outcome = 'completed'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE outcome = 'fax'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE outcome = 'busy'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE outcome = 'no-answer'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE outcome IN ('failed_transient',
                                                     'failed_permanent')), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE outcome = 'canceled'), 0)::bigint,
           coalesce(sum(n) FILTER (WHERE outcome IS NULL), 0)::bigint
    FROM keyed
    GROUP BY key
$$;

-- The same for other reporting tools, one view per dimension (filter on campaign_id).
CREATE VIEW outcomes_by_local_hour AS
SELECT c.id AS campaign_id, o.key::integer AS local_hour, o.calls, o.answered,
       o.answer_rate_pct, o.human, o.machine, o.voicemail_left, o.answered_no_amd, o.fax,
       o.busy, o.no_answer, o.failed, o.canceled, o.undecided
FROM campaigns c CROSS JOIN LATERAL outcomes_by(c.id, 'local_hour') o;

CREATE VIEW outcomes_by_zone AS
SELECT c.id AS campaign_id, o.key AS zones, o.calls, o.answered, o.answer_rate_pct,
       o.human, o.machine, o.voicemail_left, o.answered_no_amd, o.fax, o.busy, o.no_answer,
       o.failed, o.canceled, o.undecided
FROM campaigns c CROSS JOIN LATERAL outcomes_by(c.id, 'zones') o;

CREATE VIEW outcomes_by_country AS
SELECT c.id AS campaign_id, o.key AS country, o.calls, o.answered, o.answer_rate_pct,
       o.human, o.machine, o.voicemail_left, o.answered_no_amd, o.fax, o.busy, o.no_answer,
       o.failed, o.canceled, o.undecided
FROM campaigns c CROSS JOIN LATERAL outcomes_by(c.id, 'country') o;
