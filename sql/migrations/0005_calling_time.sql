-- Calling time you can prove (issue 14): a calendar per campaign, rule packs, every
-- zone and state a contact may be in, and a record of why each attempt was legal.

-- ---- campaigns: calendar, blackouts, scheduled start and end, margin, rule packs ----

ALTER TABLE campaigns
    -- Weekly local hours in dialer.windows.parse_weekly's syntax, e.g.
    -- 'mon-fri 09:00-12:00,13:00-20:00; sat 10:00-14:00' (the daemon parses it).
    ADD COLUMN calendar text NOT NULL DEFAULT 'mon-fri 09:00-20:00' CHECK (calendar <> ''),
    ADD COLUMN blackout_dates date[] NOT NULL DEFAULT '{}',
    ADD COLUMN start_at timestamptz,
    ADD COLUMN end_at timestamptz,
    -- No call is placed later than this many seconds before the window closes.
    ADD COLUMN last_call_margin integer NOT NULL DEFAULT 60
        CHECK (last_call_margin BETWEEN 0 AND 3600),
    -- Names of the rule packs the campaign obeys (dialer/rules/NAME.toml).
    ADD COLUMN rule_packs text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT campaigns_schedule_order CHECK (start_at IS NULL OR end_at IS NULL
                                                   OR start_at < end_at);

-- Today's window becomes one range on its days: window_days {1,2,3,4,5} with
-- 09:00-20:00 is 'mon,tue,wed,thu,fri 09:00-20:00' (24:00 spelled as such).
UPDATE campaigns SET calendar = (
    SELECT string_agg((ARRAY['mon','tue','wed','thu','fri','sat','sun'])[d], ',' ORDER BY d)
    FROM unnest(window_days) AS d
) || ' ' || to_char(window_start, 'HH24:MI') || '-'
  || CASE WHEN window_end >= '23:59:59' THEN '24:00' ELSE to_char(window_end, 'HH24:MI') END;

ALTER TABLE campaigns
    DROP CONSTRAINT campaigns_window_order,
    DROP COLUMN window_start,
    DROP COLUMN window_end,
    DROP COLUMN window_days;

-- The default zone stops being a silent UTC: NULL means a number whose zone is unknown
-- is not called. Before this migration every campaign had one, UTC unless the operator
-- chose another; a UTC here cannot be told from the silent default, so it is dropped
-- (`dialer campaign edit NAME --timezone UTC` sets it again). Other zones are kept.
ALTER TABLE campaigns ALTER COLUMN default_timezone DROP NOT NULL,
                      ALTER COLUMN default_timezone DROP DEFAULT;
UPDATE campaigns SET default_timezone = NULL WHERE default_timezone = 'UTC';

-- ---- contacts: candidate zones and states, with their sources ----

ALTER TABLE contacts
    -- Every zone the contact may be in (NULL: not yet worked out, a contact from before
    -- this migration; the claim works it out from the number and stores it).
    ADD COLUMN zones text[],
    ADD COLUMN zone_source text CHECK (zone_source IN ('csv', 'number', 'migrated')),
    -- US states (or territories; 'US': in the US, state unknown) the contact may be in,
    -- each with where it came from; NULL like zones.
    ADD COLUMN states text[],
    ADD COLUMN state_sources text[],
    ADD CONSTRAINT contacts_zones_sourced CHECK ((zones IS NULL) = (zone_source IS NULL)),
    ADD CONSTRAINT contacts_states_sourced
        CHECK (coalesce(cardinality(states), -1) = coalesce(cardinality(state_sources), -1));

-- One zone becomes a one-element set. A contact without one (its number spanned zones,
-- or gave none) gets every zone of its number at its next claim.
UPDATE contacts SET zones = ARRAY[timezone], zone_source = 'migrated' WHERE timezone IS NOT NULL;
ALTER TABLE contacts DROP COLUMN timezone;

-- ---- why each attempt was legal ----

-- Written in the claim's transaction with the attempt row (insert-only, so the hot
-- updates of call_attempts stay narrow). Local times are ISO-8601 with the offset the
-- dialer read, one per zone, in the order of zones.
CREATE TABLE attempt_compliance (
    attempt_id    bigint PRIMARY KEY REFERENCES call_attempts (id) ON DELETE CASCADE,
    decided_at    timestamptz NOT NULL,
    zones         text[] NOT NULL CHECK (cardinality(zones) > 0),
    zone_source   text NOT NULL,
    states        text[] NOT NULL,
    state_sources text[] NOT NULL,
    local_times   text[] NOT NULL,
    -- name@version of each rule pack the campaign obeyed.
    rule_packs    text[] NOT NULL,
    -- The checks applied: 'calendar', 'blackout', and pack/rule ids.
    rules         text[] NOT NULL,
    -- The request had to be sent before this instant (window end minus the margin).
    open_until    timestamptz NOT NULL,
    CONSTRAINT compliance_local_time_per_zone
        CHECK (cardinality(local_times) = cardinality(zones)),
    CONSTRAINT compliance_states_sourced CHECK (cardinality(states) = cardinality(state_sources))
);

-- Every attempt with its contact and campaign, for exports: the earlier columns, then
-- the compliance record (empty for attempts made before this migration).
CREATE OR REPLACE VIEW attempt_detail AS
SELECT c.name AS campaign, k.id AS contact_id, k.phone, k.state AS contact_state,
       k.last_outcome AS contact_outcome, k.reason AS contact_reason, k.attempts AS attempts_used,
       a.attempt_no, a.state AS attempt_state, a.call_sid, a.call_status, a.answered_by,
       a.duration, a.sip_response_code, a.error_code, a.error_message, a.outcome,
       a.queue_time_ms, a.requested_at, a.final_at,
       a.sent_at, r.zones, r.zone_source, r.states, r.state_sources, r.local_times,
       r.rule_packs, r.rules, r.open_until
FROM call_attempts a
JOIN contacts k ON k.id = a.contact_id
JOIN campaigns c ON c.id = a.campaign_id
LEFT JOIN attempt_compliance r ON r.attempt_id = a.id;
