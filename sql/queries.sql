-- Named statements used by dialer.repository. Each block: "-- name: x", a comment
-- saying what it is for, then one statement. Parameters are asyncpg's $1, $2, ...

-- name: list_campaigns
-- Every campaign with its contact counts by state, for `dialer campaign list`.
SELECT c.id, c.name, c.state, c.from_number, c.weight,
       count(k.id) AS contacts,
       count(k.id) FILTER (WHERE k.state IN ('done', 'failed', 'skipped')) AS finished
FROM campaigns c
LEFT JOIN contacts k ON k.campaign_id = c.id
GROUP BY c.id
ORDER BY c.id;

-- ==== daemon: claim, pacing, attempts, callbacks (dialer.dispatcher, dialer.callbacks) ====

-- name: upsert_account
-- The default account (DIALER_TWILIO_ACCOUNT_SID), with the CPS and concurrency from
-- settings; other daemons are told when that changes its limits.
WITH a AS (
    INSERT INTO accounts (sid, cps, max_concurrent_calls) VALUES ($1, $2, $3)
    ON CONFLICT (sid) DO UPDATE
    SET cps = EXCLUDED.cps, max_concurrent_calls = EXCLUDED.max_concurrent_calls,
        updated_at = now()
    WHERE (accounts.cps, accounts.max_concurrent_calls)
          IS DISTINCT FROM (EXCLUDED.cps, EXCLUDED.max_concurrent_calls)
    RETURNING sid
)
SELECT pg_notify('dialer_accounts', a.sid) FROM a;

-- name: list_accounts
-- Every account with how many campaigns it has and how many run, oldest first.
SELECT a.sid, a.label, a.cps, a.max_concurrent_calls, a.max_in_flight, a.created_at,
       a.updated_at, count(c.id) AS campaigns,
       count(c.id) FILTER (WHERE c.state = 'running') AS running
FROM accounts a LEFT JOIN campaigns c ON c.account_sid = a.sid
GROUP BY a.sid
ORDER BY a.created_at, a.sid;

-- name: account_by_key
-- One account, named by its SID or its label (a label cannot look like a SID).
SELECT * FROM accounts WHERE sid = $1 OR label = $1;

-- name: insert_account
-- `dialer account add`: nothing when the SID or the label is taken; wakes the daemons.
WITH a AS (
    INSERT INTO accounts (sid, label, cps, max_concurrent_calls, max_in_flight)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT DO NOTHING
    RETURNING sid
)
SELECT a.sid, pg_notify('dialer_accounts', a.sid) FROM a;

-- name: update_account
-- `dialer account edit`: the account's label and limits; wakes the daemons.
WITH a AS (
    UPDATE accounts
    SET label = $2, cps = $3, max_concurrent_calls = $4, max_in_flight = $5, updated_at = now()
    WHERE sid = $1
    RETURNING sid
)
SELECT a.sid, pg_notify('dialer_accounts', a.sid) FROM a;

-- name: delete_account
-- `dialer account remove`: only an account without campaigns (their history stays
-- tied to the account that placed their calls); wakes the daemons.
WITH a AS (
    DELETE FROM accounts a
    WHERE sid = $1 AND NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.account_sid = a.sid)
    RETURNING sid
)
SELECT a.sid, pg_notify('dialer_accounts', a.sid) FROM a;

-- name: account_campaign_counts
-- An account's campaigns by state, for `dialer account show`.
SELECT state, count(*) AS campaigns FROM campaigns WHERE account_sid = $1 GROUP BY state;

-- name: ping
-- Whether the database answers (health, the listener's keepalive).
SELECT 1;

-- name: running_campaigns
-- Campaigns the dispatcher of one account works on.
SELECT * FROM campaigns WHERE account_sid = $1 AND state = 'running' ORDER BY id;

-- name: reserve_slots
-- Take $2 consecutive send slots $3 seconds apart from the account's shared schedule,
-- the first no earlier than 1 ms from now. Returns the first slot as epoch seconds of
-- the database; the caller maps it onto its own clock (database_clock).
WITH cur AS (
    SELECT greatest(next_slot, clock_timestamp() + interval '1 millisecond') AS first
    FROM accounts WHERE sid = $1 FOR UPDATE
)
UPDATE accounts a SET next_slot = cur.first + make_interval(secs => $2::int * $3::float8)
FROM cur WHERE a.sid = $1
RETURNING extract(epoch FROM cur.first)::float8 AS first_slot;

-- name: database_clock
-- The database's clock as epoch seconds, read by a statement with no commit to wait
-- for: the pacer's clock sample (the reservation's own sample also spans its commit).
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: open_attempts
-- Calls in flight (requested, unknown or live) of one campaign and of its account,
-- for the max-concurrent limits.
SELECT count(*) FILTER (WHERE campaign_id = $1) AS campaign_open, count(*) AS account_open
FROM call_attempts
WHERE state IN ('requested', 'unknown', 'live')
  AND campaign_id IN (SELECT id FROM campaigns WHERE account_sid = $2);

-- name: select_due_contacts
-- Due contacts of one campaign, oldest first, locked so no other process takes them
-- (SKIP LOCKED), flagged when the number is on an active do-not-call list, with where
-- they may be as one text (dialer.compliance.Location.place: the claim decides once per
-- distinct place), and their value in the campaign's subject column ($4, NULL: none).
-- A contact from before migration 0005 has no place: its zone (if any) and the CSV state
-- its attributes carry are given instead, for the claim to work it out.
SELECT k.id, k.phone,
       CASE WHEN k.zones IS NOT NULL AND k.states IS NOT NULL
            THEN concat_ws('|', k.zone_source, array_to_string(k.zones, ' '),
                           array_to_string(k.states, ' '), array_to_string(k.state_sources, ' '))
       END AS place,
       CASE WHEN k.states IS NULL THEN k.zones END AS zones,
       CASE WHEN k.states IS NULL THEN k.zone_source END AS zone_source,
       CASE WHEN k.states IS NULL THEN k.attributes ->> 'state' END AS csv_state,
       k.attributes ->> $4::text AS subject_value,
       EXISTS (SELECT 1 FROM dnc_active d
               WHERE d.phone = k.phone
                 AND (d.campaign_id IS NULL OR d.campaign_id = k.campaign_id)) AS on_dnc
FROM contacts k
WHERE k.campaign_id = $1 AND k.state IN ('pending', 'retry_wait') AND k.next_attempt_at <= $2
ORDER BY k.next_attempt_at, k.id
LIMIT $3
FOR UPDATE OF k SKIP LOCKED;

-- name: lock_numbers
-- The first step of the cap check, and what makes it race-free: lock the rows of the
-- numbers a claim may call (creating those never claimed), in number order, so two claims
-- never wait on each other in a circle. ON CONFLICT DO UPDATE locks the row even though
-- its WHERE updates nothing. A claim of the same number by another campaign or process
-- waits here until this claim commits; the caller counts the recent calls only after
-- this statement (a later statement, so a later snapshot, which sees what the other
-- claim committed), and its attempt rows are written before it commits. Taken by every
-- claim, capped or not: an uncapped campaign's calls count against the others' caps.
INSERT INTO number_locks (phone)
SELECT DISTINCT phone FROM unnest($1::text[]) AS n(phone) ORDER BY phone
ON CONFLICT (phone) DO UPDATE SET phone = EXCLUDED.phone WHERE false;

-- name: recent_calls
-- The calls to these numbers claimed since $2 that may have reached the person (not
-- void, not refused by Twilio), any campaign, any subject, for the cap check: when each
-- was sent (else claimed), its subject, and what became of it.
SELECT r.phone, r.subject, coalesce(a.sent_at, r.decided_at) AS at, a.state, a.outcome,
       a.final_at
FROM attempt_compliance r JOIN call_attempts a ON a.id = r.attempt_id
WHERE r.phone = ANY($1::text[]) AND r.decided_at > $2
  AND a.state NOT IN ('void', 'rejected');

-- name: defer_contacts
-- Contacts outside their calling window become due at its next opening.
UPDATE contacts k SET next_attempt_at = d.at, updated_at = now()
FROM unnest($1::bigint[], $2::timestamptz[]) AS d(id, at)
WHERE k.id = d.id;

-- name: skip_contacts
-- Contacts that must never be dialed (do-not-call, no calling time), with the reason.
UPDATE contacts k SET state = 'skipped', reason = d.reason, updated_at = now()
FROM unnest($1::bigint[], $2::text[]) AS d(id, reason)
WHERE k.id = d.id;

-- name: store_locations
-- Where contacts from before migration 0005 may be, worked out from their numbers at
-- their first claim (lists space-separated).
UPDATE contacts k
SET zones = string_to_array(d.zones, ' '), zone_source = d.zone_source,
    states = string_to_array(d.states, ' '), state_sources = string_to_array(d.state_sources, ' ')
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
     AS d(id, zones, zone_source, states, state_sources)
WHERE k.id = d.id;

-- name: claim_contacts
-- Move locked contacts to dialing and write their attempt rows, in the claim's
-- transaction, before any request goes out, each with the record of why the call is
-- legal at $3 (attempt_compliance; lists space-separated, $4 the campaign's packs) and
-- what it counts against: its number, subject ($12) and caps ($13).
WITH claimed AS (
    UPDATE contacts k
    SET state = 'dialing', claimed_by = $2, claimed_at = $3, attempts = k.attempts + 1,
        updated_at = now()
    WHERE k.id = ANY($1::bigint[])
    RETURNING k.id, k.campaign_id, k.phone, k.attributes, k.attempts
), inserted AS (
    INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at, worker_id)
    SELECT id, campaign_id, attempts, $3, $2 FROM claimed
    RETURNING id, contact_id, attempt_no
), recorded AS (
    INSERT INTO attempt_compliance (attempt_id, decided_at, zones, zone_source, states,
                                    state_sources, local_times, rule_packs, rules, open_until,
                                    phone, subject, caps)
    SELECT i.id, $3, string_to_array(r.zones, ' '), r.zone_source,
           string_to_array(r.states, ' '), string_to_array(r.state_sources, ' '),
           string_to_array(r.local_times, ' '), $4::text[], string_to_array(r.rules, ' '),
           r.open_until, c.phone, r.subject, string_to_array(r.caps, ' ')
    FROM inserted i
    JOIN claimed c ON c.id = i.contact_id
    JOIN unnest($1::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                $10::text[], $11::timestamptz[], $12::text[], $13::text[])
         AS r(contact_id, zones, zone_source, states, state_sources, local_times, rules,
              open_until, subject, caps)
      ON r.contact_id = i.contact_id
)
SELECT i.id AS attempt_id, i.contact_id, i.attempt_no, c.phone, c.attributes
FROM inserted i JOIN claimed c ON c.id = i.contact_id
ORDER BY i.id;

-- name: release_unsent
-- Claimed contacts whose request never went out: drop the attempt, the contact is
-- pending again (due at $2 when given), or skipped with reason $3 when given (its number
-- was put on a do-not-call list meanwhile), and the attempt is not counted.
-- Rows are locked attempt then contact, in attempt id order, as lock_attempts does:
-- two batches that lock in different orders can deadlock.
WITH locked AS (
    SELECT a.id FROM call_attempts a JOIN contacts k ON k.id = a.contact_id
    WHERE a.id = ANY($1::bigint[]) ORDER BY a.id FOR UPDATE OF a, k
), gone AS (
    DELETE FROM call_attempts a USING locked
    WHERE a.id = locked.id AND a.state = 'requested'
    RETURNING a.contact_id
)
UPDATE contacts k
SET state = CASE WHEN $3::text IS NULL THEN 'pending' ELSE 'skipped' END, reason = $3,
    claimed_by = NULL, claimed_at = NULL, attempts = k.attempts - 1,
    next_attempt_at = coalesce($2, k.next_attempt_at), updated_at = now()
FROM gone WHERE k.id = gone.contact_id AND k.state = 'dialing';

-- name: held_on_dnc
-- Of the attempts a process has claimed and not sent, those whose number is now on an
-- active do-not-call list that applies to their campaign.
SELECT a.id, k.phone FROM call_attempts a JOIN contacts k ON k.id = a.contact_id
WHERE a.id = ANY($1::bigint[]) AND a.state = 'requested'
  AND EXISTS (SELECT 1 FROM dnc_active d
              WHERE d.phone = k.phone AND (d.campaign_id IS NULL OR d.campaign_id = k.campaign_id));

-- name: reject_attempt
-- Twilio refused the number for good: no call exists, the contact has failed.
WITH a AS (
    UPDATE call_attempts
    SET state = 'rejected', error_code = $2, error_message = $3, outcome = 'rejected'
    WHERE id = $1 AND state = 'requested'
    RETURNING contact_id
)
UPDATE contacts k
SET state = 'failed', claimed_by = NULL, claimed_at = NULL, last_outcome = 'rejected',
    reason = 'twilio error ' || coalesce($2::text, '?') || ': ' || $3, updated_at = now()
FROM a WHERE k.id = a.contact_id;

-- name: mark_unknown
-- The request may have created a call; reconciliation will decide.
UPDATE call_attempts SET state = 'unknown', error_message = $2
WHERE id = $1 AND state = 'requested';

-- name: mark_live
-- Record the answers to Create Call requests (a batch): Call SID, queue time; the
-- contact is in a call. A callback may have got there first: never move backwards.
-- Locks in lock_attempts' order (see release_unsent). The answers come out of the
-- locking step itself (materialized: every row locked before the update reads one),
-- so the update is one index lookup per answer; joining a separate list of the locked
-- ids to them was planned as a nested loop over both lists (200 x 200 comparisons,
-- three quarters of the statement's time for a batch of 200).
WITH d AS MATERIALIZED (
    SELECT d.attempt_id, d.call_sid, d.queue_time_ms, d.sent_at
    FROM unnest($1::bigint[], $2::text[], $3::int[], $4::timestamptz[])
        AS d(attempt_id, call_sid, queue_time_ms, sent_at)
    JOIN call_attempts a ON a.id = d.attempt_id
    JOIN contacts k ON k.id = a.contact_id
    ORDER BY a.id
    FOR UPDATE OF a, k
), a AS (
    UPDATE call_attempts a
    SET state = CASE WHEN a.state IN ('requested', 'unknown') THEN 'live' ELSE a.state END,
        call_sid = d.call_sid, queue_time_ms = d.queue_time_ms, sent_at = d.sent_at,
        call_status = coalesce(a.call_status, 'queued'),
        statuses = CASE WHEN a.call_status IS NULL THEN ARRAY['queued'] ELSE a.statuses END
    FROM d
    WHERE a.id = d.attempt_id
      AND (a.state IN ('requested', 'unknown') OR a.call_sid = d.call_sid)
    RETURNING a.contact_id, a.state
)
UPDATE contacts k SET state = 'in_call', claimed_by = NULL, claimed_at = NULL, updated_at = now()
FROM a WHERE k.id = a.contact_id AND a.state = 'live' AND k.state = 'dialing';

-- name: set_campaign_state
-- A guarded state change that wakes every dialer process (LISTEN dialer_campaigns).
-- An operator's decision replaces whatever reason the dialer had for a pause.
WITH c AS (
    UPDATE campaigns SET state = $2, pause_reason = NULL, updated_at = now(),
        completed_at = CASE WHEN $2 = 'completed' THEN now() ELSE completed_at END
    WHERE id = $1 AND state = ANY($3::text[])
    RETURNING id
)
SELECT c.id, pg_notify('dialer_campaigns', c.id::text) FROM c;

-- name: refuse_attempt
-- Twilio refused the request because of the campaign's settings or its account, not
-- the contact, or the dialer could not build it: no call exists. The attempt stays
-- as void with the code and message (it does not count) and the contact is pending
-- again with its attempt given back.
WITH a AS (
    UPDATE call_attempts
    SET state = 'void', outcome = 'refused', error_code = $2, error_message = $3
    WHERE id = $1 AND state = 'requested'
    RETURNING contact_id
)
UPDATE contacts k
SET state = 'pending', claimed_by = NULL, claimed_at = NULL, attempts = k.attempts - 1,
    updated_at = now()
FROM a WHERE k.id = a.contact_id AND k.state = 'dialing';

-- name: pause_campaign_with_reason
-- The dialer pauses a running campaign it must not go on with, saying why, and wakes
-- every dialer process. No row back when it was not running (paused meanwhile).
WITH c AS (
    UPDATE campaigns SET state = 'paused', pause_reason = $2, updated_at = now()
    WHERE id = $1 AND state = 'running'
    RETURNING id, name
)
SELECT c.id, c.name, pg_notify('dialer_campaigns', c.id::text) FROM c;

-- name: pause_account_campaigns
-- Every running campaign of an account whose credentials or standing Twilio refused,
-- with the reason; every dialer process is woken.
WITH c AS (
    UPDATE campaigns SET state = 'paused', pause_reason = $2, updated_at = now()
    WHERE account_sid = $1 AND state = 'running'
    RETURNING id, name
)
SELECT c.id, c.name, pg_notify('dialer_campaigns', c.id::text) FROM c ORDER BY c.id;

-- name: complete_finished_campaigns
-- Running campaigns with contacts, none of them pending, dialing, in a call or
-- waiting for a retry, are completed; so are campaigns whose scheduled end has come
-- (contacts not called stay as they are: `campaign edit --end-at` and `start` resume).
-- Two NOT EXISTS, each the predicate of a partial index (migration 0012): pending and
-- retry_wait are contacts_due's, dialing and in_call contacts_called_or_skipped's; each
-- is one index probe per running campaign, however big.
WITH done AS (
    UPDATE campaigns c SET state = 'completed', completed_at = now(), updated_at = now()
    WHERE c.state = 'running' AND c.account_sid = $1
      AND (c.end_at <= now()
           OR EXISTS (SELECT 1 FROM contacts k WHERE k.campaign_id = c.id)
              AND NOT EXISTS (SELECT 1 FROM contacts k WHERE k.campaign_id = c.id
                              AND k.state IN ('pending', 'retry_wait'))
              AND NOT EXISTS (SELECT 1 FROM contacts k WHERE k.campaign_id = c.id
                              AND k.state IN ('dialing', 'in_call')))
    RETURNING c.id, c.name
)
SELECT id, name, pg_notify('dialer_campaigns', id::text) FROM done;

-- name: start_scheduled_campaigns
-- Draft campaigns whose scheduled start has come (and whose end has not) start by
-- themselves.
WITH started AS (
    UPDATE campaigns SET state = 'running', updated_at = now()
    WHERE state = 'draft' AND account_sid = $1 AND start_at <= now()
      AND (end_at IS NULL OR end_at > now())
    RETURNING id, name
)
SELECT id, name, pg_notify('dialer_campaigns', id::text) FROM started;

-- name: register_worker
-- This process, for the heartbeat-based recovery of its work if it dies.
INSERT INTO workers (id, hostname, pid) VALUES ($1, $2, $3);

-- name: heartbeat
UPDATE workers SET heartbeat_at = now() WHERE id = $1 RETURNING id;

-- name: deregister_worker
DELETE FROM workers WHERE id = $1;

-- name: delete_dead_workers
-- Processes silent for more than $1 seconds are dead.
DELETE FROM workers WHERE heartbeat_at < now() - make_interval(secs => $1) RETURNING id;

-- name: orphan_attempts_unknown
-- Attempts a dead process had written but not recorded the answer of: the request
-- may have gone out, so they are reconciled, never simply re-sent.
UPDATE call_attempts a
SET state = 'unknown', error_message = 'process died before recording the answer'
WHERE a.state = 'requested'
  AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = a.worker_id)
RETURNING a.id;

-- name: lock_attempts
-- The attempts a batch of callbacks is about, with their contacts and the account of
-- their campaign, locked for the update (in id order, so concurrent batches cannot
-- deadlock). Found by the attempt id our callback URLs carry, else by Call SID.
SELECT a.id, a.contact_id, a.attempt_no, a.state, a.call_sid, a.call_status, a.statuses,
       a.answered_by, a.sip_response_code, a.duration, a.outcome, a.hangup_requested_at,
       a.final_at, a.campaign_id, a.legacy_callback_url, c.account_sid,
       k.state AS contact_state, k.attempts AS contact_attempts, k.zones, k.zone_source,
       k.states, k.state_sources
FROM call_attempts a JOIN contacts k ON k.id = a.contact_id
JOIN campaigns c ON c.id = a.campaign_id
WHERE a.id = ANY($1::bigint[]) OR a.call_sid = ANY($2::text[])
ORDER BY a.id
FOR UPDATE OF a, k;

-- name: campaign_by_id
SELECT * FROM campaigns WHERE id = $1;

-- name: insert_events
-- Store callbacks raw, once: a duplicate (same CallSid, source and sequence number,
-- or same idempotency token, also within the batch) inserts nothing. Returns the
-- keys of the rows inserted, so the caller knows which events were new.
INSERT INTO call_events (call_sid, attempt_id, source, sequence_number, idempotency_token,
                         call_status, answered_by, params)
SELECT e.call_sid, e.attempt_id, e.source, e.sequence_number, e.idempotency_token,
       e.call_status, e.answered_by, e.params
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::int[], $5::text[], $6::text[],
            $7::text[], $8::jsonb[])
     WITH ORDINALITY AS e(call_sid, attempt_id, source, sequence_number, idempotency_token,
                          call_status, answered_by, params, position)
ORDER BY e.position
ON CONFLICT DO NOTHING
RETURNING call_sid, source, sequence_number, idempotency_token;

-- name: update_attempts
-- The merged view of attempts after a batch of events (computed by dialer.outcomes).
UPDATE call_attempts a
SET state = u.state, call_sid = u.call_sid, call_status = u.call_status,
    statuses = string_to_array(u.statuses, ','), answered_by = u.answered_by,
    duration = u.duration, sip_response_code = u.sip_code, outcome = u.outcome,
    final_at = u.final_at, hangup_requested_at = u.hangup_requested_at
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::int[], $8::int[], $9::text[], $10::timestamptz[], $11::timestamptz[])
     AS u(id, state, call_sid, call_status, statuses, answered_by, duration, sip_code,
          outcome, final_at, hangup_requested_at)
WHERE a.id = u.id;

-- name: update_contact_outcomes
-- The policy's decisions for contacts whose current attempt ended.
UPDATE contacts k
SET state = d.state, next_attempt_at = coalesce(d.due, k.next_attempt_at),
    last_outcome = d.outcome, reason = d.reason, claimed_by = NULL, claimed_at = NULL,
    updated_at = now()
FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])
     AS d(id, state, due, outcome, reason)
WHERE k.id = d.id;

-- name: contacts_in_call
-- Callbacks adopted attempts whose POST answers we never recorded.
UPDATE contacts SET state = 'in_call', claimed_by = NULL, claimed_at = NULL, updated_at = now()
WHERE id = ANY($1::bigint[]) AND state = 'dialing';

-- name: unknown_attempts
-- Attempts whose request may or may not have created a call, old enough that a
-- created call would be listed by Twilio now.
SELECT a.id, a.contact_id, a.requested_at, k.phone, c.from_number
FROM call_attempts a
JOIN contacts k ON k.id = a.contact_id
JOIN campaigns c ON c.id = a.campaign_id
WHERE a.state = 'unknown' AND a.requested_at < $1 AND c.account_sid = $2
ORDER BY a.requested_at
LIMIT $3;

-- name: sid_taken
SELECT EXISTS (SELECT 1 FROM call_attempts WHERE call_sid = $1);

-- name: void_attempt
-- Reconciliation proved no call exists: the attempt is void (its number is given
-- back) and the contact is due again now.
WITH a AS (
    UPDATE call_attempts SET state = 'void', outcome = 'void', reconciled_at = $2
    WHERE id = $1 AND state = 'unknown'
    RETURNING contact_id
)
UPDATE contacts k
SET state = 'pending', claimed_by = NULL, claimed_at = NULL, attempts = k.attempts - 1,
    next_attempt_at = $2, updated_at = now()
FROM a WHERE k.id = a.contact_id AND k.state = 'dialing';

-- name: stale_live_attempts
-- Live calls with no final callback for a long time (or final but waiting for an
-- AMD result that never came): ask Twilio about them.
UPDATE call_attempts a SET reconciled_at = $1
WHERE a.id IN (
    SELECT id FROM call_attempts
    WHERE (state = 'live' OR (state = 'final' AND outcome IS NULL))
      AND coalesce(reconciled_at, sent_at, requested_at) < $2
      AND campaign_id IN (SELECT id FROM campaigns WHERE account_sid = $3)
    ORDER BY coalesce(reconciled_at, sent_at, requested_at)
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
RETURNING a.id, a.call_sid, a.state;

-- name: requested_attempts_of_worker
-- Attempts this process claimed whose request has not been answered (or not sent).
SELECT id FROM call_attempts WHERE state = 'requested' AND worker_id = $1;

-- name: live_calls_of_worker
-- Calls this process placed that have not ended: shutdown drains until none are left.
SELECT count(*) FROM call_attempts WHERE state = 'live' AND worker_id = $1;

-- name: live_calls_of_worker_by_account
-- The same, per account (the dialer_calls_in_flight gauge).
SELECT c.account_sid, count(*) AS calls
FROM call_attempts a JOIN campaigns c ON c.id = a.campaign_id
WHERE a.state = 'live' AND a.worker_id = $1
GROUP BY c.account_sid;

-- name: attempts_made
-- Requests sent for a campaign so far (void attempts never reached Twilio as calls).
SELECT count(*) FROM call_attempts WHERE campaign_id = $1 AND state <> 'void';

-- name: campaign_state
SELECT state FROM campaigns WHERE id = $1;

-- ==== operator commands: campaigns, import, do-not-call (dialer.commands, dialer.importer) ====

-- name: campaign_by_name
-- One campaign by the name operators use for it.
SELECT * FROM campaigns WHERE name = $1;

-- name: insert_campaign
-- A new draft campaign; no row back when the name is taken.
INSERT INTO campaigns (name, account_sid, from_number, twiml_url, twiml, weight, max_concurrent,
                       ring_timeout, amd_mode, amd_async, machine_policy, unknown_is_machine,
                       retry_policy, calendar, blackout_dates, start_at, end_at,
                       last_call_margin, rule_packs, default_timezone, caps, subject,
                       subject_column, quiet_after_human, opt_out_digit, opt_out_scope,
                       opt_out_message)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23, $24, $25, $26, $27)
ON CONFLICT (name) DO NOTHING
RETURNING id;

-- name: update_campaign
-- `campaign edit`: every setting rewritten from the validated merged spec, then every
-- dialer process is woken (LISTEN dialer_campaigns) to pick the new values up.
WITH c AS (
    UPDATE campaigns
    SET from_number = $2, twiml_url = $3, twiml = $4, weight = $5, max_concurrent = $6,
        ring_timeout = $7, amd_mode = $8, amd_async = $9, machine_policy = $10,
        unknown_is_machine = $11, retry_policy = $12, calendar = $13, blackout_dates = $14,
        start_at = $15, end_at = $16, last_call_margin = $17, rule_packs = $18,
        default_timezone = $19, caps = $20, subject = $21, subject_column = $22,
        quiet_after_human = $23, opt_out_digit = $24, opt_out_scope = $25,
        opt_out_message = $26, updated_at = now()
    WHERE id = $1
    RETURNING id
)
SELECT c.id, pg_notify('dialer_campaigns', c.id::text) FROM c;

-- name: contact_for_why
-- One contact of campaign $1 by number, for `dialer why`: its state, attempts, when it
-- is due, where it may be, its value in the subject column ($4), and the do-not-call
-- entry that lists it at $3 (global first).
SELECT k.id, k.state, k.reason, k.attempts,
       CASE WHEN k.next_attempt_at = '-infinity' THEN NULL ELSE k.next_attempt_at END AS due,
       k.zones, k.zone_source, k.states, k.state_sources,
       CASE WHEN k.states IS NULL THEN k.attributes ->> 'state' END AS csv_state,
       k.attributes ->> $4::text AS subject_value,
       (SELECT coalesce(d.reason, 'no reason given')
               || CASE WHEN d.campaign_id IS NULL THEN ' (global list, '
                       ELSE ' (this campaign''s list, ' END
               || d.source
               || coalesce(', until ' || to_char(d.expires_at AT TIME ZONE 'UTC',
                                                 'YYYY-MM-DD HH24:MI "UTC"'), '') || ')'
        FROM dnc_numbers d
        WHERE d.phone = k.phone AND (d.campaign_id IS NULL OR d.campaign_id = k.campaign_id)
          AND dnc_entry_active(d, $3)
        ORDER BY d.campaign_id NULLS FIRST, d.id LIMIT 1) AS dnc_entry
FROM contacts k WHERE k.campaign_id = $1 AND k.phone = $2;

-- name: campaign_contact_counts
-- Contacts of one campaign by state, for `campaign show`: its contact:<state> counters
-- of migration 0006 (a few hundred rows whatever the campaign's size; since 0012 no index
-- holds every contact by state).
SELECT substr(counter, length('contact:') + 1) AS state, sum(n) AS contacts
FROM campaign_counts WHERE campaign_id = $1 AND counter LIKE 'contact:%'
GROUP BY counter HAVING sum(n) <> 0 ORDER BY counter;

-- name: lock_campaign_imports
-- Imports into one campaign take turns (session lock, released with the connection):
-- an import that found the campaign empty COPYs straight into contacts, which no
-- other import may then add to. True when the lock was free.
SELECT pg_try_advisory_lock($1, $2);

-- name: wait_campaign_imports
-- The lock of lock_campaign_imports, waiting for the import that holds it.
SELECT pg_advisory_lock($1, $2);

-- name: unlock_campaign_imports
SELECT pg_advisory_unlock($1, $2);

-- name: campaign_has_contacts
SELECT EXISTS (SELECT 1 FROM contacts WHERE campaign_id = $1);

-- name: reserve_contact_ids
-- $1 new contact ids, ascending, one per line of text: a batch's COPY lines take them
-- in file order, so the contacts of a file are called in its order even when two
-- batches load at once.
SELECT string_agg(id::text, E'\n' ORDER BY id)
FROM (SELECT nextval('contacts_id_seq') AS id FROM generate_series(1, $1)) AS ids;

-- name: import_dnc_listed
-- The numbers of an import batch ($2) that campaign $1 must not call: on the global
-- do-not-call list or on the campaign's (entries in force: dnc_active). The import's
-- one do-not-call check; its rows are then stored as skipped with reason 'dnc'.
SELECT u.phone FROM unnest($2::text[]) AS u(phone)
WHERE EXISTS (SELECT 1 FROM dnc_active d
              WHERE d.phone = u.phone AND (d.campaign_id IS NULL OR d.campaign_id = $1));

-- name: create_import_staging
-- The session's staging table for a batch merged into a campaign that had contacts
-- already: the batch's COPY lines (dialer.contactfile.COPY_COLUMNS) land here, the
-- merge reads them, and the commit of the batch's transaction empties it. TEMP, so no
-- WAL is written and a killed import leaves nothing behind.
CREATE TEMP TABLE IF NOT EXISTS dialer_import_batch (
    id            bigint NOT NULL,
    campaign_id   bigint NOT NULL,
    phone         text NOT NULL,
    zones         text[] NOT NULL,
    zone_source   text NOT NULL,
    states        text[] NOT NULL,
    state_sources text[] NOT NULL,
    attributes    jsonb NOT NULL,
    state         text NOT NULL,
    reason        text
) ON COMMIT DELETE ROWS;

-- name: merge_without_jit
-- For the rest of the merge's transaction: compiling it costs more than it saves.
SET LOCAL jit = off;

-- name: merge_import_batch
-- Move a staged batch into its campaign in one statement, in file order (the ids were
-- reserved so). A number the campaign has already (an earlier run, or a concurrent
-- writer) is skipped by ON CONFLICT; numbers repeated within the file never reach
-- here. Returns what was stored as pending and as skipped for do-not-call.
WITH ins AS (
    INSERT INTO contacts (id, campaign_id, phone, zones, zone_source, states, state_sources,
                          attributes, state, reason)
    OVERRIDING SYSTEM VALUE
    SELECT id, campaign_id, phone, zones, zone_source, states, state_sources, attributes,
           state, reason
    FROM dialer_import_batch
    ORDER BY id
    ON CONFLICT (campaign_id, phone) DO NOTHING
    RETURNING state
)
SELECT count(*) FILTER (WHERE state = 'pending') AS loaded,
       count(*) FILTER (WHERE state = 'skipped') AS dnc
FROM ins;

-- name: requeue_relocated
-- Contacts of campaign $1 skipped for their location (no zone; zones that never share
-- calling time) that a staged row gives a zone (a timezone column): the new location
-- replaces the old and they are pending again. Run after merge_import_batch in its
-- transaction, so the staged batch is still there; returns how many.
WITH s AS (
    SELECT DISTINCT ON (phone) phone, zones, zone_source, states, state_sources
    FROM dialer_import_batch WHERE zone_source = 'csv' ORDER BY phone, id
), requeued AS (
    UPDATE contacts k
    SET zones = s.zones, zone_source = s.zone_source, states = s.states,
        state_sources = s.state_sources,
        state = 'pending', reason = NULL, next_attempt_at = '-infinity', updated_at = now()
    FROM s
    WHERE k.campaign_id = $1 AND k.phone = s.phone AND k.state = 'skipped'
      AND (k.reason LIKE 'no time zone%' OR k.reason LIKE 'no common calling time%')
    RETURNING k.id
)
SELECT count(*) FROM requeued;

-- name: requeue_location_skips
-- `campaign edit` changed the calendar, the rule packs or the default zone: contacts
-- skipped for their location are decided again at their next claim.
UPDATE contacts SET state = 'pending', reason = NULL, next_attempt_at = '-infinity',
                    updated_at = now()
WHERE campaign_id = $1 AND state = 'skipped'
  AND (reason LIKE 'no time zone%' OR reason LIKE 'no common calling time%');

-- name: redecide_waiting
-- `campaign edit` changed the caps, the subject or the quiet period: pending contacts
-- deferred to a later instant (a cap, the calling time) are due now, and their next
-- claim decides again (retries keep their delays: they are retry_wait).
UPDATE contacts SET next_attempt_at = '-infinity', updated_at = now()
WHERE campaign_id = $1 AND state = 'pending' AND next_attempt_at > now();

-- name: dnc_add
-- Put a number on a do-not-call list ($2 NULL: every campaign's) from source $4, until $5
-- (NULL: for good), for an opt-out with the campaign $6 and call $7 that recorded it, and
-- skip the matching contacts that have not been dialed yet. Contacts claimed but not sent
-- are stopped by the dispatchers, told by NOTIFY dialer_dnc (trigger dnc_listed).
-- A number already active on the list keeps its entry: a new reason replaces the old one
-- and a later expiry (or none) extends it; an expired or removed entry stays as history
-- beside the new one.
WITH current AS (
    SELECT id FROM dnc_active
    WHERE phone = $1 AND campaign_id IS NOT DISTINCT FROM $2
    ORDER BY id LIMIT 1
), extended AS (
    UPDATE dnc_numbers d
    SET reason = coalesce($3, d.reason),
        expires_at = CASE WHEN d.expires_at IS NULL OR $5::timestamptz IS NULL THEN NULL
                          ELSE greatest(d.expires_at, $5) END
    FROM current WHERE d.id = current.id
    RETURNING d.id
), entry AS (
    INSERT INTO dnc_numbers (phone, campaign_id, reason, source, expires_at,
                             origin_campaign_id, call_sid)
    SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM current)
    RETURNING id
), skipped AS (
    UPDATE contacts k SET state = 'skipped', reason = 'dnc', updated_at = now()
    WHERE k.campaign_id = ANY (ARRAY(SELECT id FROM campaigns
                                     WHERE $2::bigint IS NULL OR id = $2))
      AND k.phone = $1 AND k.state IN ('pending', 'retry_wait')
    RETURNING k.id
)
SELECT EXISTS (SELECT 1 FROM entry) AS added, (SELECT count(*) FROM skipped) AS skipped;

-- name: dnc_remove
-- Take a number off one list ($2 NULL: the global one): its entries there (active or
-- expired) are kept, marked removed at now() by $3 (who or what) because of $4. Contacts
-- skipped because of it stay skipped: re-import them to call them.
UPDATE dnc_numbers SET removed_at = now(), removed_by = $3, removal_reason = $4
WHERE phone = $1 AND campaign_id IS NOT DISTINCT FROM $2 AND removed_at IS NULL
RETURNING id;

-- name: dnc_list
-- Entries with their state at now() (active, expired, removed): those that apply to
-- campaign $1 (global ones included) or all when NULL, from source $2, in state $3, and
-- recorded by campaign $4's calls, each filter off when NULL.
SELECT * FROM (
    SELECT d.phone, c.name AS campaign, d.reason, d.source, d.added_at, d.expires_at,
           o.name AS origin, d.call_sid, d.removed_at, d.removed_by, d.removal_reason,
           CASE WHEN d.removed_at IS NOT NULL THEN 'removed'
                WHEN dnc_entry_active(d, now()) THEN 'active' ELSE 'expired' END AS state
    FROM dnc_numbers d
    LEFT JOIN campaigns c ON c.id = d.campaign_id
    LEFT JOIN campaigns o ON o.id = d.origin_campaign_id
    WHERE ($1::bigint IS NULL OR d.campaign_id IS NULL OR d.campaign_id = $1)
      AND ($2::text IS NULL OR d.source = $2)
      AND ($4::bigint IS NULL OR d.origin_campaign_id = $4)
) e
WHERE $3::text IS NULL OR e.state = $3
ORDER BY e.phone, e.campaign NULLS FIRST, e.added_at;

-- name: create_dnc_staging
-- The session's staging table for `dnc import` batches (see create_import_staging): each
-- number with its expiry (NULL: the import's default, $3 of merge_dnc_batch).
CREATE TEMP TABLE IF NOT EXISTS dialer_dnc_staging (
    phone      text NOT NULL,
    expires_at timestamptz
) ON COMMIT DELETE ROWS;

-- name: merge_dnc_batch
-- Add a staged batch of numbers to one list ($1 NULL: global) with reason $2, source
-- 'import', each until its own expiry or $3, and skip the matching contacts not dialed
-- yet, as dnc_add does for one number (a number repeated keeps its longest expiry; one
-- already active keeps its entry, extended by a later expiry). Entries that have already
-- expired are kept as history and skip nothing. The rows' trigger is off (bulk); every
-- dispatcher is told once to look its claims up.
WITH s AS (
    SELECT DISTINCT ON (phone) phone, coalesce(expires_at, $3) AS expires_at
    FROM dialer_dnc_staging ORDER BY phone, coalesce(expires_at, $3) DESC NULLS FIRST
), current AS (
    SELECT DISTINCT ON (d.phone) d.id, s.expires_at
    FROM s JOIN dnc_active d ON d.phone = s.phone AND d.campaign_id IS NOT DISTINCT FROM $1
    ORDER BY d.phone, d.id
), extended AS (
    UPDATE dnc_numbers d
    SET expires_at = CASE WHEN d.expires_at IS NULL OR current.expires_at IS NULL THEN NULL
                          ELSE greatest(d.expires_at, current.expires_at) END
    FROM current WHERE d.id = current.id
    RETURNING d.id
), entry AS (
    INSERT INTO dnc_numbers (phone, campaign_id, reason, source, expires_at)
    SELECT s.phone, $1, $2, 'import', s.expires_at FROM s
    WHERE NOT EXISTS (SELECT 1 FROM dnc_active d
                      WHERE d.phone = s.phone AND d.campaign_id IS NOT DISTINCT FROM $1)
    RETURNING id
), skipped AS (
    UPDATE contacts k SET state = 'skipped', reason = 'dnc', updated_at = now()
    FROM s
    WHERE k.campaign_id = ANY (ARRAY(SELECT id FROM campaigns
                                     WHERE $1::bigint IS NULL OR id = $1))
      AND k.phone = s.phone AND k.state IN ('pending', 'retry_wait')
      AND (s.expires_at IS NULL OR s.expires_at > now())
    RETURNING k.id
)
SELECT (SELECT count(*) FROM s) AS distinct_numbers, (SELECT count(*) FROM entry) AS added,
       (SELECT count(*) FROM skipped) AS skipped, pg_notify('dialer_dnc', '');

-- name: opt_out_target
-- The attempt a Gather action names, with its contact (locked, in lock_attempts' order)
-- and its campaign's opt-out settings and account (the request's AccountSid must match).
SELECT a.id, a.state, a.call_sid, a.outcome, a.contact_id, a.campaign_id, k.phone,
       k.state AS contact_state, c.name AS campaign, c.opt_out_digit, c.opt_out_scope,
       c.opt_out_message, c.account_sid
FROM call_attempts a
JOIN contacts k ON k.id = a.contact_id
JOIN campaigns c ON c.id = a.campaign_id
WHERE a.id = $1
FOR UPDATE OF a, k;

-- name: mark_opted_out
-- The person pressed the opt-out key: the attempt's outcome is opted_out
-- (dialer.policy.Outcome.OPTED_OUT) and its contact,
-- if this is its current attempt, is done with that outcome (the call's status callbacks
-- still come and are recorded; no decision follows them: the outcome is set).
WITH a AS (
    UPDATE call_attempts SET outcome = 'opted_out' WHERE id = $1 RETURNING contact_id, attempt_no
)
UPDATE contacts k
SET state = 'done', last_outcome = 'opted_out', reason = NULL, claimed_by = NULL,
    claimed_at = NULL, updated_at = now()
FROM a WHERE k.id = a.contact_id AND k.attempts = a.attempt_no
  AND k.state IN ('dialing', 'in_call');

-- ==== dialer check (dialer.preflight) ====

-- name: campaigns_to_check
-- Campaigns that may still dial: of one account, or of every account when $1 is NULL.
SELECT * FROM campaigns
WHERE state IN ('draft', 'running', 'paused') AND ($1::text IS NULL OR account_sid = $1)
ORDER BY name;

-- name: sample_contact
-- The contact whose CSV columns fill a campaign's placeholders for the TwiML check.
SELECT id, phone, attributes FROM contacts WHERE campaign_id = $1 ORDER BY id LIMIT 1;

-- name: live_workers
-- Daemons whose heartbeat is younger than $1 seconds: the nonces /healthz may answer.
SELECT id FROM workers WHERE heartbeat_at >= now() - make_interval(secs => $1);

-- name: recent_pacing
-- How the account's calls sent since $2 fared at Twilio's queue: how many, how many
-- waited more than $3 ms (queue_time from the Create Call answer), the longest wait,
-- and the most sent in one minute.
WITH sent AS (
    SELECT a.sent_at, a.queue_time_ms
    FROM call_attempts a JOIN campaigns c ON c.id = a.campaign_id
    WHERE c.account_sid = $1 AND a.sent_at >= $2 AND a.queue_time_ms IS NOT NULL
)
SELECT count(*) AS calls,
       count(*) FILTER (WHERE queue_time_ms > $3) AS queued,
       max(queue_time_ms) AS max_queue_ms,
       coalesce((SELECT max(n) FROM (SELECT count(*) AS n FROM sent
                                      GROUP BY date_trunc('minute', sent_at)) m), 0)
           AS busiest_minute
FROM sent;

-- name: contacts_without_zone
-- Contacts still to be called whose row and number give no time zone: only the
-- campaign's default zone can place them (contacts from before migration 0005 are
-- located at their next claim and not counted).
SELECT count(*) FROM contacts
WHERE campaign_id = $1 AND cardinality(zones) = 0 AND state IN ('pending', 'retry_wait');

-- ==== reports (dialer.report, dialer.commands.report) ====
-- Plans are EXPLAIN (ANALYZE, BUFFERS) on bench/reports.py's database (10M contacts,
-- 20M attempts, 50 campaigns; "large" has 2M contacts and 4M attempts).

-- name: campaign_summary
-- The report's summary row of one campaign (the campaign_summary view: counters kept
-- by the triggers of migration 0006, so its cost does not grow with the campaign), with
-- the reason the dialer paused it, if it did.
--   Nested Loop
--     -> Index Scan using campaigns_name_key on campaigns (1 row)
--     -> Aggregate -> HashAggregate (group by counter)
--          -> Bitmap Heap Scan on campaign_counts  <- Bitmap Index Scan on
--             campaign_counts_campaign (the campaign's few hundred rows)
SELECT s.*, c.pause_reason
FROM campaign_summary s JOIN campaigns c ON c.id = s.campaign_id
WHERE s.name = $1;

-- name: campaign_outcomes
-- Attempts of campaign $1 by the outcome the policy stored ('rejected', 'void' and
-- 'undecided' included), most frequent first. Same plan as campaign_summary's lateral
-- part: the campaign's rows of campaign_counts.
SELECT substr(counter, length('outcome:') + 1) AS outcome, n AS attempts
FROM campaign_counters($1)
WHERE counter LIKE 'outcome:%'
ORDER BY n DESC, outcome;

-- name: retry_funnel
-- What attempt 1, 2, 3 ... of campaign $1 ended in: its outcome, or its state while it
-- has none (requested, unknown, live, final). Same plan as campaign_outcomes.
SELECT split_part(counter, ':', 2)::int AS attempt_no, split_part(counter, ':', 3) AS ended_in,
       n AS attempts
FROM campaign_counters($1)
WHERE counter LIKE 'try:%'
ORDER BY attempt_no, attempts DESC, ended_in;

-- name: export_session
-- The export's output settings, for its transaction only: times in UTC, ISO dates; and
-- room for each process's share of the export's sort (the 4 MB default spilled every
-- share to disk in runs merged again; a share of 10M contacts' large campaign is
-- 2M rows of ~600 bytes, so it still spills, in fewer and longer runs).
-- effective_cache_size: the compliance records are read by index probes in the
-- attempts' own order (see export_attempts), so each of their pages is read once; with
-- the server's 4 GB the planner priced the probes as random reads at 10M contacts and
-- hashed every campaign's records instead (a Parallel Seq Scan of all of
-- attempt_compliance into a Parallel Hash Right Join that spilled in batches): 56.3 s
-- against 40.0 s for the large campaign's 3,975,000 rows. It sets the planner's price
-- of index reads only (no memory is allocated by it); the plan is the same from 12 GB.
SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL work_mem = '64MB';
SET LOCAL effective_cache_size = '1TB';

-- name: export_attempts
-- Every attempt of campaign $1 requested in [$2, $3) (NULL: unbounded), for `report
-- --csv` through COPY ... TO STDOUT: one row per attempt, contact by contact, each
-- contact's attempts in order (the attempt id orders a void attempt before the one that
-- took its number again), so two exports of the same rows are the same bytes. The
-- columns of attempt_detail but the campaign's id, lists space-separated (no zone,
-- state, time or rule contains a space).
--
-- Written out rather than read through attempt_rows (whose OFFSET 0 fence the view
-- needs), and every value turned into its text here: then the whole plan runs in the
-- parallel workers, the text included, each sorting its share, and the leader only
-- merges the sorted shares and writes CSV. Through attempt_rows, the leader sorted all
-- the rows and made the text of each value alone, and the workers waited: 2.3 of the
-- 4.1 CPU seconds of 397,500 rows were the leader's (bench/reports.py, 1M contacts).
-- The text is what COPY would write for the value (the same output functions under the
-- same settings), so the bytes are those of the earlier export. The campaign's name is
-- an InitPlan, evaluated once and handed to the workers.
-- 397,500 rows (large of 1M contacts):
--   Gather Merge (2 workers; Params Evaluated: the name)
--     -> Sort (k.id, a.attempt_no, a.id; external merge, per worker)
--        -> Nested Loop Left Join (the text of every value made here)
--           -> Parallel Hash Join (a.contact_id = k.id)
--              -> Parallel Seq Scan on call_attempts (Filter: campaign_id = 1)
--              -> Parallel Hash <- Parallel Bitmap Heap Scan on contacts
--                 <- Bitmap Index Scan on contacts_campaign_state (campaign_id = 1)
--   (measured before migration 0012 dropped contacts_campaign_state; the contacts of a
--   campaign are found through contacts_number_once (campaign_id, phone) since, a plan
--   not measured again with bench/reports.py)
--           -> Index Scan using attempt_compliance_pkey (attempt_id = a.id)
-- 3,975,000 rows (large of 10M contacts): the same shape (with export_session's
-- effective_cache_size; without it, a Parallel Hash Right Join over a Parallel Seq
-- Scan of all of attempt_compliance, see there), the sort an external merge per
-- process. The planner counts 663,830 rows where there are 3,975,000: it takes the
-- filters on the contacts' and the attempts' campaign as independent.
-- A small campaign or one day of a large one (--since/--until): the same above a
-- Bitmap Heap Scan on call_attempts <- Bitmap Index Scan on attempts_campaign_requested
-- (campaign_id and the span). No index helps the whole large campaign: its attempts
-- are on every page of the table, and an index in export order (campaign_id,
-- contact_id, attempt_no, id) with a merge join took as long (random heap reads
-- instead of a sort).
SELECT (SELECT name FROM campaigns WHERE id = $1) AS campaign, k.id::text AS contact_id,
       k.phone, k.state AS contact_state, k.last_outcome AS contact_outcome,
       k.reason AS contact_reason, k.attempts::text AS attempts_used,
       a.attempt_no::text AS attempt_no, a.state AS attempt_state, a.call_sid,
       a.call_status, a.answered_by, a.duration::text AS duration,
       a.sip_response_code::text AS sip_response_code, a.error_code::text AS error_code,
       a.error_message, a.outcome, a.queue_time_ms::text AS queue_time_ms,
       a.requested_at::text AS requested_at, a.final_at::text AS final_at,
       a.sent_at::text AS sent_at, array_to_string(r.zones, ' ') AS zones, r.zone_source,
       array_to_string(r.states, ' ') AS states,
       array_to_string(r.state_sources, ' ') AS state_sources,
       array_to_string(r.local_times, ' ') AS local_times,
       array_to_string(r.rule_packs, ' ') AS rule_packs,
       array_to_string(r.rules, ' ') AS rules, r.open_until::text AS open_until,
       a.id::text AS attempt_id, r.subject, array_to_string(r.caps, ' ') AS caps
FROM call_attempts a
JOIN contacts k ON k.id = a.contact_id AND k.campaign_id = $1
LEFT JOIN attempt_compliance r ON r.attempt_id = a.id
WHERE a.campaign_id = $1
  AND a.requested_at >= coalesce($2, '-infinity'::timestamptz)
  AND a.requested_at < coalesce($3, 'infinity'::timestamptz)
ORDER BY k.id, a.attempt_no, a.id;

-- name: outcomes_by_local_hour
-- Ended calls of campaign $1 by the recipient's local hour (0-23; NULL last: the
-- contact's zones disagree on the hour).
SELECT key::integer AS local_hour, calls, answered, answer_rate_pct, human, machine,
       voicemail_left, answered_no_amd, fax, busy, no_answer, failed, canceled, undecided
FROM outcomes_by($1, 'local_hour')
ORDER BY 1 NULLS LAST;

-- name: outcomes_by_zone
-- Ended calls of campaign $1 by the zones the contact may be in (space-separated),
-- most calls first.
SELECT key AS zones, calls, answered, answer_rate_pct, human, machine, voicemail_left,
       answered_no_amd, fax, busy, no_answer, failed, canceled, undecided
FROM outcomes_by($1, 'zones')
ORDER BY calls DESC, zones;

-- name: outcomes_by_country
-- Ended calls of campaign $1 by the country of the contact's zones (zones_country;
-- NULL: none), most calls first.
SELECT key AS country, calls, answered, answer_rate_pct, human, machine, voicemail_left,
       answered_no_amd, fax, busy, no_answer, failed, canceled, undecided
FROM outcomes_by($1, 'country')
ORDER BY calls DESC, country NULLS LAST;

-- ---- the HTML report's timelines and compliance (dialer.report_figures) ----
-- Each scans the campaign's attempts once (attempts_campaign_requested), as
-- outcomes_by does: the report is run now and then, not polled.

-- name: attempt_span
-- When campaign $1's first and last attempts were requested (NULL: none yet), the span
-- the timelines cover, and when its last call ended (the demo's run against its
-- forecast). Reads the campaign's attempts by attempts_campaign_requested.
SELECT min(requested_at) AS first_at, max(requested_at) AS last_at,
       max(final_at) AS last_final_at
FROM call_attempts WHERE campaign_id = $1;

-- name: attempts_over_time
-- Attempts of campaign $1 by the $2-second bucket they were requested in and what they
-- ended in (the outcome stored, else the attempt's state), as retry_funnel counts them:
-- summed over the buckets, each ended_in equals the funnel's total for it.
SELECT date_bin(make_interval(secs => $2), requested_at, timestamptz 'epoch') AS bucket,
       coalesce(outcome, state) AS ended_in, count(*) AS attempts
FROM call_attempts
WHERE campaign_id = $1
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: sends_over_time
-- Create Call requests sent per $2-second bucket of [$3, $4): by campaign $1 and by
-- every campaign of its account (which share its CPS), the busiest second of the
-- account in the bucket, and the account's CPS limit now.
WITH mine AS (
    SELECT account_sid FROM campaigns WHERE id = $1
), per_second AS (
    SELECT date_trunc('second', a.sent_at) AS second,
           count(*) FILTER (WHERE a.campaign_id = $1) AS campaign_sent, count(*) AS account_sent
    FROM call_attempts a
    WHERE a.campaign_id = ANY (ARRAY(SELECT c.id FROM campaigns c JOIN mine USING (account_sid)))
      AND a.requested_at >= $3 AND a.requested_at < $4 AND a.sent_at IS NOT NULL
    GROUP BY 1
)
SELECT date_bin(make_interval(secs => $2), second, timestamptz 'epoch') AS bucket,
       sum(campaign_sent)::bigint AS campaign_sent, sum(account_sent)::bigint AS account_sent,
       max(account_sent) AS busiest_second,
       (SELECT s.cps FROM accounts s JOIN mine ON mine.account_sid = s.sid) AS account_cps
FROM per_second
GROUP BY 1
ORDER BY 1;

-- name: queue_time_over_time
-- Twilio's queue_time (ms, from the Create Call answers) of campaign $1's calls per
-- $2-second bucket of their request: how many report one, the median, the 95th
-- percentile and the longest. No rows when Twilio reported none.
SELECT date_bin(make_interval(secs => $2), requested_at, timestamptz 'epoch') AS bucket,
       count(*) AS calls,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY queue_time_ms) AS median_ms,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY queue_time_ms) AS p95_ms,
       max(queue_time_ms) AS max_ms
FROM call_attempts
WHERE campaign_id = $1 AND queue_time_ms IS NOT NULL
GROUP BY 1
ORDER BY 1;

-- name: calls_by_rule_pack
-- Attempts of campaign $1 by the rule pack (name@version) their compliance record says
-- they obeyed; 'none' for attempts that obeyed the campaign's calendar only.
SELECT coalesce(pack, 'none') AS rule_pack, count(*) AS attempts
FROM call_attempts a
JOIN attempt_compliance r ON r.attempt_id = a.id
LEFT JOIN LATERAL unnest(r.rule_packs) AS pack ON true
WHERE a.campaign_id = $1
GROUP BY 1
ORDER BY 2 DESC, 1;

-- name: contacts_waiting
-- Contacts of campaign $1 not called now and why: due later (a calling window or a
-- retry delay not reached), waiting for a retry, or skipped with the reason (opt-outs
-- are 'dnc'), at $2.
SELECT CASE WHEN state = 'pending' THEN 'waiting for a calling window'
            WHEN state = 'retry_wait' THEN 'waiting for a retry'
            ELSE 'skipped: ' || coalesce(reason, 'no reason') END AS why,
       count(*) AS contacts
FROM contacts
WHERE campaign_id = $1
  AND (state = 'skipped' OR (state IN ('pending', 'retry_wait') AND next_attempt_at > $2))
GROUP BY 1
ORDER BY 2 DESC, 1;

-- ---- dialer forecast (dialer.forecast, dialer.commands.forecast) ----

-- name: forecast_contacts
-- Contacts of campaign $1 still to call, grouped by where they may be (the place of
-- select_due_contacts; NULL for contacts from before migration 0005, located at their
-- first claim) and the attempts they have used, with how many of them a do-not-call
-- list holds (the claim skips those).
SELECT CASE WHEN k.zones IS NOT NULL AND k.states IS NOT NULL
            THEN concat_ws('|', k.zone_source, array_to_string(k.zones, ' '),
                           array_to_string(k.states, ' '), array_to_string(k.state_sources, ' '))
       END AS place,
       k.attempts, count(*) AS contacts,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM dnc_numbers d
           WHERE d.phone = k.phone AND (d.campaign_id IS NULL OR d.campaign_id = k.campaign_id)
       )) AS on_dnc
FROM contacts k
WHERE k.campaign_id = $1 AND k.state IN ('pending', 'retry_wait')
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: account_sharing
-- The CPS stored for campaign $1's account (NULL: no daemon has run for it yet) and the
-- summed weight of the account's other running campaigns, which share that CPS.
SELECT a.cps, coalesce((SELECT sum(o.weight) FROM campaigns o
                        WHERE o.account_sid = c.account_sid AND o.id <> c.id
                          AND o.state = 'running'), 0)::bigint AS other_weight
FROM campaigns c LEFT JOIN accounts a ON a.sid = c.account_sid
WHERE c.id = $1;
