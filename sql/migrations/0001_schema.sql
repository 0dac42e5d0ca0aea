-- The dialer's schema. Every state a row can be in is spelled out in a CHECK so a
-- bug elsewhere fails loudly instead of leaving a contact in a state nobody handles.

CREATE TABLE accounts (
    sid                  text PRIMARY KEY CHECK (sid ~ '^AC[0-9a-fA-F]{32}$'),
    cps                  double precision NOT NULL DEFAULT 1 CHECK (cps > 0 AND cps <= 1000),
    max_concurrent_calls integer CHECK (max_concurrent_calls > 0),
    -- The shared CPS budget, kept as data: the start time of the next free send slot.
    -- Every process reserves slots with one UPDATE ... RETURNING that moves it on by
    -- 1/cps per slot, so all processes together send on one evenly spaced schedule.
    next_slot            timestamptz NOT NULL DEFAULT '-infinity',
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
    account_sid      text NOT NULL REFERENCES accounts (sid),
    from_number      text NOT NULL CHECK (from_number ~ '^\+[1-9][0-9]{1,14}$'),
    twiml_url        text CHECK (twiml_url ~ '^https?://'),
    twiml            text CHECK (length(twiml) BETWEEN 1 AND 4000),
    weight           integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
    max_concurrent   integer CHECK (max_concurrent > 0),
    ring_timeout     integer NOT NULL DEFAULT 30 CHECK (ring_timeout BETWEEN 5 AND 600),
    amd_mode         text NOT NULL DEFAULT 'off'
                     CHECK (amd_mode IN ('off', 'Enable', 'DetectMessageEnd')),
    amd_async        boolean NOT NULL DEFAULT false,
    machine_policy   text NOT NULL DEFAULT 'hangup_retry'
                     CHECK (machine_policy IN ('hangup_retry', 'voicemail', 'accept')),
    unknown_is_machine boolean NOT NULL DEFAULT false,
    -- RetryPolicy as JSON (dialer.policy.retry_policy_to_json); max_attempts lives in it.
    retry_policy     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(retry_policy) = 'object'),
    window_start     time NOT NULL DEFAULT '09:00',
    -- '24:00' is how Postgres spells the end of the day.
    window_end       time NOT NULL DEFAULT '20:00',
    window_days      smallint[] NOT NULL DEFAULT '{1,2,3,4,5}'
                     CHECK (cardinality(window_days) BETWEEN 1 AND 7
                            AND window_days <@ '{1,2,3,4,5,6,7}'::smallint[]),
    default_timezone text NOT NULL DEFAULT 'UTC',
    state            text NOT NULL DEFAULT 'draft'
                     CHECK (state IN ('draft', 'running', 'paused', 'stopped', 'completed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CONSTRAINT campaigns_one_twiml_source CHECK ((twiml_url IS NULL) <> (twiml IS NULL)),
    CONSTRAINT campaigns_window_order CHECK (window_start < window_end)
);

CREATE TABLE contacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id     bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    phone           text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
    -- NULL: the campaign's default_timezone applies (number's zone unknown or ambiguous).
    timezone        text,
    attributes      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'dialing', 'in_call', 'retry_wait',
                                     'done', 'failed', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT '-infinity',
    last_outcome    text,
    reason          text,
    -- Which process holds the contact while dialing (see workers); NULL otherwise.
    claimed_by      text,
    claimed_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contacts_number_once UNIQUE (campaign_id, phone),
    -- Only a contact being dialed belongs to a process.
    CONSTRAINT contacts_claim_consistent CHECK ((state = 'dialing') = (claimed_by IS NOT NULL)),
    CONSTRAINT contacts_final_has_reason
        CHECK (state NOT IN ('failed', 'skipped') OR reason IS NOT NULL)
);

-- The claim query walks this index: due contacts of one campaign, oldest first.
CREATE INDEX contacts_due ON contacts (campaign_id, next_attempt_at, id)
    WHERE state IN ('pending', 'retry_wait');
CREATE INDEX contacts_campaign_state ON contacts (campaign_id, state);
CREATE INDEX contacts_claimed_by ON contacts (claimed_by) WHERE claimed_by IS NOT NULL;

CREATE TABLE call_attempts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id        bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    campaign_id       bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    attempt_no        integer NOT NULL CHECK (attempt_no >= 1),
    -- requested: row written, POST about to go / in flight.
    -- unknown:   the POST's fate is ambiguous; reconciliation decides.
    -- live:      Twilio accepted it (call_sid known), outcome pending.
    -- final:     a terminal CallStatus was recorded.
    -- rejected:  Twilio refused the request (error_code says why): no call exists.
    -- void:      reconciliation proved no call exists; the attempt does not count.
    state             text NOT NULL DEFAULT 'requested'
                      CHECK (state IN ('requested', 'unknown', 'live', 'final', 'rejected', 'void')),
    worker_id         text,
    requested_at      timestamptz NOT NULL,
    sent_at           timestamptz,
    call_sid          text UNIQUE CHECK (call_sid ~ '^CA[0-9a-fA-F]{32}$'),
    call_status       text CHECK (call_status IN ('queued', 'initiated', 'ringing', 'in-progress',
                                                  'completed', 'busy', 'no-answer', 'failed', 'canceled')),
    statuses          text[] NOT NULL DEFAULT '{}',
    answered_by       text CHECK (answered_by IN ('human', 'machine_start', 'machine_end_beep',
                                                  'machine_end_silence', 'machine_end_other',
                                                  'fax', 'unknown')),
    duration          integer CHECK (duration >= 0),
    sip_response_code integer,
    queue_time_ms     integer,
    error_code        integer,
    error_message     text,
    outcome           text,
    hangup_requested_at timestamptz,
    -- Last time reconciliation asked Twilio about this call.
    reconciled_at     timestamptz,
    final_at          timestamptz,
    CONSTRAINT attempts_live_has_sid CHECK (state NOT IN ('live', 'final') OR call_sid IS NOT NULL),
    CONSTRAINT attempts_final_has_time CHECK ((state = 'final') = (final_at IS NOT NULL))
);
-- An attempt number is used once; a void attempt (no call exists) gives its number back.
CREATE UNIQUE INDEX attempts_number_once ON call_attempts (contact_id, attempt_no)
    WHERE state <> 'void';
-- At most one attempt per contact may be open: this is what "never two calls for one
-- attempt" rests on, whatever the code above it does.
CREATE UNIQUE INDEX attempts_one_open ON call_attempts (contact_id)
    WHERE state IN ('requested', 'unknown', 'live');
CREATE INDEX attempts_open_by_worker ON call_attempts (worker_id) WHERE state = 'requested';
CREATE INDEX attempts_unknown ON call_attempts (requested_at) WHERE state = 'unknown';
CREATE INDEX attempts_live ON call_attempts (campaign_id) WHERE state = 'live';
CREATE INDEX attempts_campaign ON call_attempts (campaign_id, attempt_no);

CREATE TABLE call_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_sid          text NOT NULL,
    attempt_id        bigint REFERENCES call_attempts (id) ON DELETE CASCADE,
    source            text NOT NULL,
    sequence_number   integer,
    idempotency_token text UNIQUE,
    call_status       text,
    answered_by       text,
    params            jsonb NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    -- A callback is stored once: Twilio's retries and duplicates collide here.
    CONSTRAINT events_once UNIQUE NULLS NOT DISTINCT (call_sid, source, sequence_number)
);
CREATE INDEX events_attempt ON call_events (attempt_id);

CREATE TABLE dnc_numbers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone       text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
    -- NULL: on every campaign's list.
    campaign_id bigint REFERENCES campaigns (id) ON DELETE CASCADE,
    reason      text,
    added_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dnc_once UNIQUE NULLS NOT DISTINCT (phone, campaign_id)
);

-- Live dialer processes. A process whose heartbeat is stale is dead: its claimed
-- contacts and unconfirmed attempts are recovered as data (see recover_dead_workers).
CREATE TABLE workers (
    id           text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
