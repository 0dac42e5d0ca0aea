-- Callback URLs now name the attempt in a path that ends in a fixed segment
-- (/twilio/attempts/{id}/status), which cannot be re-split the way the old form
-- (/twilio/status?a={id}) can: the signed string has no separators, so "?a=1575" plus
-- a parameter "3AccountSid..." signed like "?a=15753" plus "AccountSid...".
-- Attempts placed before this migration were given the old form, and only they may
-- still be reported on with it. Every existing row is marked; new rows are not.
-- (A constant default makes ADD COLUMN a catalogue change, not a table rewrite.)
ALTER TABLE call_attempts ADD COLUMN legacy_callback_url boolean NOT NULL DEFAULT true;
ALTER TABLE call_attempts ALTER COLUMN legacy_callback_url SET DEFAULT false;
