-- Accounts as data: `dialer account add|edit|remove` keep each Twilio account's limits
-- here, and every daemon dials for every account it has a token for (tokens never
-- come into the database: see dialer.credentials).
--
-- label: what operators call the account (`campaign create --account acme`); it
--   cannot look like an account SID, so `--account X` is never ambiguous.
-- max_in_flight: REST requests in flight at once per daemon (Twilio's 20429 guard);
--   NULL takes DIALER_TWILIO_MAX_IN_FLIGHT.
ALTER TABLE accounts
    ADD COLUMN label text
        CONSTRAINT accounts_label_form
        CHECK (label ~ '^[A-Za-z][A-Za-z0-9_.-]{0,63}$' AND label !~ '^AC[0-9a-fA-F]{32}$'),
    ADD COLUMN max_in_flight integer
        CONSTRAINT accounts_max_in_flight_bound CHECK (max_in_flight BETWEEN 1 AND 1000),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT accounts_label_once UNIQUE (label);

-- The same bound as a campaign's (dialer.campaigns.MAX_CONCURRENT); nothing larger
-- was ever meant (DIALER_TWILIO_MAX_CONCURRENT_CALLS has no account near it).
UPDATE accounts SET max_concurrent_calls = 100000 WHERE max_concurrent_calls > 100000;
ALTER TABLE accounts ADD CONSTRAINT accounts_max_concurrent_bound
    CHECK (max_concurrent_calls <= 100000);
