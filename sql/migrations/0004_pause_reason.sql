-- Why the dialer paused a campaign by itself: Twilio refused the campaign's settings
-- (its URL, its caller ID) or its account, or the stored settings no longer pass
-- validation. Shown by `dialer campaign show` and `dialer report`; NULL when the
-- campaign is not paused or an operator paused it (every operator state change
-- clears it, see set_campaign_state).
ALTER TABLE campaigns ADD COLUMN pause_reason text
    CONSTRAINT campaigns_pause_reason_length CHECK (length(pause_reason) <= 1000);

-- A campaign runs at most 100,000 calls at once (dialer.campaigns.MAX_CONCURRENT).
-- Larger limits could be stored before; no account comes near them, so they meant
-- "no practical limit", which the bound keeps.
UPDATE campaigns SET max_concurrent = 100000 WHERE max_concurrent > 100000;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_max_concurrent_bound
    CHECK (max_concurrent <= 100000);
