-- contacts_campaign_state (campaign_id, state) of 0001 held every contact, so every
-- imported row paid for it (issue 18: bench/import_sql.py measured a COPYed row
-- without it at 12.2 µs of Postgres CPU and 538 B of WAL, against 13.7 µs and 645 B),
-- while the queries that read it by state want only a few states:
--   * complete_finished_campaigns asks whether a campaign has contacts still to call;
--     it now asks it in two NOT EXISTS, one for pending and retry_wait (answered by
--     contacts_due, the claim's index, which holds exactly those) and one for dialing
--     and in_call (answered here);
--   * requeue_location_skips and contacts_waiting read a campaign's skipped contacts
--     (here);
--   * campaign_contact_counts (`campaign show`) reads the counters of 0006 instead;
--   * a campaign's contacts whatever their state (export_attempts, attempt_detail,
--     campaign_has_contacts) are found through contacts_number_once (campaign_id, phone).
-- An import writes none of these states but skipped, for the numbers on a do-not-call
-- list; the claim and the callbacks move contacts in and out of them as before (a
-- change of state was never a HOT update: state is in contacts_due's predicate).
CREATE INDEX contacts_called_or_skipped ON contacts (campaign_id, state)
    WHERE state IN ('dialing', 'in_call', 'skipped');
DROP INDEX contacts_campaign_state;
