-- How often a person is called (issue 15): caps per number and subject across
-- campaigns, a quiet period after a conversation, opt-out during the call, and
-- do-not-call entries with a lifecycle (source, expiry, removal kept as history).

-- ---- campaigns: caps, subject, quiet period, opt-out ----

ALTER TABLE campaigns
    -- The campaign's own caps in dialer.caps.parse_caps' syntax: '2/24h' (per number and
    -- subject), '5/7d/number' (per number, whatever the subject).
    ADD COLUMN caps text[] NOT NULL DEFAULT '{}',
    -- What the calls are about. Campaigns of one subject share their calls' counts; NULL is
    -- the one subject of every campaign that names none.
    ADD COLUMN subject text CHECK (subject ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
    -- A CSV column whose value, after the subject, makes each contact's subject (a debt's
    -- id): two debts of one person are capped apart.
    ADD COLUMN subject_column text CHECK (length(subject_column) BETWEEN 1 AND 200),
    -- No call for this many seconds after a conversation on the same subject.
    ADD COLUMN quiet_after_human integer CHECK (quiet_after_human BETWEEN 60 AND 7776000),
    -- The key that puts the number on a do-not-call list during the call, which list, and
    -- what the caller hears then (NULL: dialer.optout.DEFAULT_MESSAGE).
    ADD COLUMN opt_out_digit text CHECK (opt_out_digit ~ '^[0-9*#]$'),
    ADD COLUMN opt_out_scope text NOT NULL DEFAULT 'global'
        CHECK (opt_out_scope IN ('global', 'campaign')),
    ADD COLUMN opt_out_message text CHECK (length(opt_out_message) BETWEEN 1 AND 500);

-- ---- the calls each cap counts ----

-- Every attempt's record names the number and the subject it was about, and the caps it
-- was counted against: 'source:cap=count' per cap (source 'settings', 'campaign' or a
-- pack rule such as 'us-states/FL-calls'; count = the calls in the period before this
-- one), and 'quiet:7d=0' when a quiet period was checked. A cap counts the calls of
-- attempts that may have reached the person (not void, not rejected), found here by
-- number. Attempts before migration 0005 have no record and are not counted.
ALTER TABLE attempt_compliance
    ADD COLUMN phone text,
    ADD COLUMN subject text NOT NULL DEFAULT '',
    ADD COLUMN caps text[] NOT NULL DEFAULT '{}';
UPDATE attempt_compliance r SET phone = k.phone
FROM call_attempts a JOIN contacts k ON k.id = a.contact_id
WHERE a.id = r.attempt_id;
ALTER TABLE attempt_compliance ALTER COLUMN phone SET NOT NULL;
-- A record written without its number (by a program, or code from before caps) gets its
-- contact's, so that its call still counts against the caps.
CREATE FUNCTION attempt_compliance_phone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.phone IS NULL THEN
        SELECT k.phone INTO NEW.phone
        FROM call_attempts a JOIN contacts k ON k.id = a.contact_id WHERE a.id = NEW.attempt_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER attempt_compliance_phone BEFORE INSERT ON attempt_compliance
    FOR EACH ROW EXECUTE FUNCTION attempt_compliance_phone();
CREATE INDEX compliance_calls_to ON attempt_compliance (phone, decided_at);

-- One row per number ever claimed. A claim locks the rows of the numbers it may call, in
-- number order, before it counts their recent calls, and holds them until it commits its
-- attempts: two claims of the same number (two campaigns, two processes) are one after
-- the other, and the second counts the first's call. Row locks, not advisory locks, so
-- that a claim of 200 numbers takes no room in the shared lock table.
CREATE TABLE number_locks (phone text PRIMARY KEY);

-- ---- do-not-call entries: where they came from, until when, and their removal ----

ALTER TABLE dnc_numbers
    -- import (dnc import), cli (dnc add), opt-out (pressed during a call), api (written by
    -- another program: the default), migrated (from before this migration, source unknown).
    ADD COLUMN source text NOT NULL DEFAULT 'migrated'
        CHECK (source IN ('import', 'cli', 'opt-out', 'api', 'migrated')),
    -- The entry stops blocking at this instant (NULL: never); it stays as history.
    ADD COLUMN expires_at timestamptz,
    -- The campaign whose call recorded an opt-out, and the call (campaign_id is the list).
    ADD COLUMN origin_campaign_id bigint REFERENCES campaigns (id) ON DELETE SET NULL,
    ADD COLUMN call_sid text CHECK (call_sid ~ '^CA[0-9a-fA-F]{32}$'),
    -- `dnc remove` keeps the entry, saying when, who or what, and why.
    ADD COLUMN removed_at timestamptz,
    ADD COLUMN removed_by text CHECK (length(removed_by) BETWEEN 1 AND 200),
    ADD COLUMN removal_reason text CHECK (length(removal_reason) <= 500),
    ADD CONSTRAINT dnc_removal_says_who CHECK ((removed_at IS NULL) = (removed_by IS NULL));
ALTER TABLE dnc_numbers ALTER COLUMN source SET DEFAULT 'api';
-- A number may now have several entries on one list over time (expired, removed, then
-- listed again); the statements keep at most one active entry per number and list.
ALTER TABLE dnc_numbers DROP CONSTRAINT dnc_once;
CREATE INDEX dnc_current ON dnc_numbers (phone) WHERE removed_at IS NULL;
CREATE INDEX dnc_origin ON dnc_numbers (origin_campaign_id) WHERE origin_campaign_id IS NOT NULL;

-- Every daemon hears of a number put on a list, however it was written (dnc add, an
-- import, an opt-out, or a program inserting rows): NOTIFY dialer_dnc "phone" (global
-- list) or "phone campaign_id", which stops the calls to it claimed and not yet sent
-- (dialer.dnc.DncBarrier). Identical notifications of one transaction are delivered once.
-- A bulk import (merge_dnc_batch) sets dialer.dnc_bulk and sends one "" instead (look
-- every claim up): a million numbers must not be a million notifications.
CREATE FUNCTION dnc_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('dialer.dnc_bulk', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('dialer_dnc', NEW.phone || coalesce(' ' || NEW.campaign_id::text, ''));
    RETURN NULL;
END $$;
CREATE TRIGGER dnc_listed AFTER INSERT OR UPDATE OF expires_at, removed_at ON dnc_numbers
    FOR EACH ROW EXECUTE FUNCTION dnc_notify();

-- What "on the list" means, defined once: an entry blocks calls at `at` when it was not
-- removed and has not expired. Every check (claim, import, why) goes through it, and
-- dnc_active is it at now(). Inlined by the planner, so the partial index serves it.
CREATE FUNCTION dnc_entry_active(entry dnc_numbers, at timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT entry.removed_at IS NULL AND (entry.expires_at IS NULL OR entry.expires_at > at) $$;

CREATE VIEW dnc_active AS
SELECT * FROM dnc_numbers d WHERE dnc_entry_active(d, now());

-- ---- reports ----

-- The rows of `report --csv` and of attempt_detail (migration 0006), with the subject
-- each call was counted under and the caps it was counted against, at the end.
DROP VIEW attempt_detail;
DROP FUNCTION attempt_rows(bigint, timestamptz, timestamptz);
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
               open_until timestamptz, attempt_id bigint, subject text, caps text[])
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT k.id, k.phone, k.state, k.last_outcome, k.reason, k.attempts,
           a.attempt_no, a.state, a.call_sid, a.call_status, a.answered_by,
           a.duration, a.sip_response_code, a.error_code, a.error_message, a.outcome,
           a.queue_time_ms, a.requested_at, a.final_at, a.sent_at,
           r.zones, r.zone_source, r.states, r.state_sources, r.local_times,
           r.rule_packs, r.rules, r.open_until, a.id, r.subject, r.caps
    FROM call_attempts a
    JOIN contacts k ON k.id = a.contact_id AND k.campaign_id = campaign
    LEFT JOIN attempt_compliance r ON r.attempt_id = a.id
    WHERE a.campaign_id = campaign
      AND a.requested_at >= coalesce(since, '-infinity')
      AND a.requested_at < coalesce(until, 'infinity')
    OFFSET 0
$$;
CREATE VIEW attempt_detail AS
SELECT c.name AS campaign, r.contact_id, r.phone, r.contact_state, r.contact_outcome,
       r.contact_reason, r.attempts_used, r.attempt_no, r.attempt_state, r.call_sid,
       r.call_status, r.answered_by, r.duration, r.sip_response_code, r.error_code,
       r.error_message, r.outcome, r.queue_time_ms, r.requested_at, r.final_at,
       r.sent_at, r.zones, r.zone_source, r.states, r.state_sources, r.local_times,
       r.rule_packs, r.rules, r.open_until, r.attempt_id, c.id AS campaign_id,
       r.subject, r.caps
FROM campaigns c
CROSS JOIN LATERAL attempt_rows(c.id) r;
