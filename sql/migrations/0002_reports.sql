-- Views for reporting queries. They read only recorded facts (attempt rows written
-- from Twilio's callbacks), never in-memory state of a dialer process.

-- One row per campaign: where its contacts are, and what its calls turned into.
CREATE VIEW campaign_summary AS
WITH contact_counts AS (
    SELECT campaign_id,
           count(*) AS contacts,
           count(*) FILTER (WHERE state = 'pending') AS pending,
           count(*) FILTER (WHERE state = 'dialing') AS dialing,
           count(*) FILTER (WHERE state = 'in_call') AS in_call,
           count(*) FILTER (WHERE state = 'retry_wait') AS retry_wait,
           count(*) FILTER (WHERE state = 'done') AS done,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           count(*) FILTER (WHERE state = 'skipped') AS skipped
    FROM contacts GROUP BY campaign_id
), attempt_counts AS (
    SELECT campaign_id,
           count(*) FILTER (WHERE state <> 'void') AS attempts,
           count(*) FILTER (WHERE state = 'final') AS calls_ended,
           count(*) FILTER (WHERE call_status = 'completed') AS answered,
           count(*) FILTER (WHERE call_status = 'completed'
                            AND coalesce(answered_by, 'human') IN ('human', 'unknown')) AS human,
           count(*) FILTER (WHERE answered_by LIKE 'machine%') AS machine,
           count(*) FILTER (WHERE answered_by = 'fax') AS fax,
           count(*) FILTER (WHERE call_status = 'busy') AS busy,
           count(*) FILTER (WHERE call_status = 'no-answer') AS no_answer,
           count(*) FILTER (WHERE call_status = 'failed') AS call_failed,
           count(*) FILTER (WHERE call_status = 'canceled') AS canceled,
           count(*) FILTER (WHERE state = 'rejected') AS rejected,
           avg(duration) FILTER (WHERE call_status = 'completed') AS avg_talk_seconds
    FROM call_attempts GROUP BY campaign_id
)
SELECT c.id AS campaign_id, c.name, c.state,
       coalesce(k.contacts, 0) AS contacts,
       coalesce(k.pending, 0) AS pending, coalesce(k.dialing, 0) AS dialing,
       coalesce(k.in_call, 0) AS in_call, coalesce(k.retry_wait, 0) AS retry_wait,
       coalesce(k.done, 0) AS done, coalesce(k.failed, 0) AS failed,
       coalesce(k.skipped, 0) AS skipped,
       coalesce(a.attempts, 0) AS attempts,
       coalesce(a.answered, 0) AS answered,
       round(100.0 * coalesce(a.answered, 0) / nullif(a.calls_ended, 0), 1) AS answer_rate_pct,
       coalesce(a.human, 0) AS human, coalesce(a.machine, 0) AS machine,
       coalesce(a.fax, 0) AS fax,
       coalesce(a.busy, 0) AS busy, coalesce(a.no_answer, 0) AS no_answer,
       coalesce(a.call_failed, 0) AS call_failed, coalesce(a.canceled, 0) AS canceled,
       coalesce(a.rejected, 0) AS rejected,
       round(a.avg_talk_seconds, 1) AS avg_talk_seconds,
       round(100.0 * (coalesce(k.done, 0) + coalesce(k.failed, 0) + coalesce(k.skipped, 0))
             / nullif(k.contacts, 0), 1) AS completion_pct
FROM campaigns c
LEFT JOIN contact_counts k ON k.campaign_id = c.id
LEFT JOIN attempt_counts a ON a.campaign_id = c.id;

-- Calls ended per campaign and hour (UTC), by final status.
CREATE VIEW outcomes_per_hour AS
SELECT campaign_id, date_trunc('hour', final_at) AS hour, call_status, count(*) AS calls
FROM call_attempts
WHERE state = 'final'
GROUP BY campaign_id, date_trunc('hour', final_at), call_status;

-- Every attempt with its contact and campaign, for exports.
CREATE VIEW attempt_detail AS
SELECT c.name AS campaign, k.id AS contact_id, k.phone, k.state AS contact_state,
       k.last_outcome AS contact_outcome, k.reason AS contact_reason, k.attempts AS attempts_used,
       a.attempt_no, a.state AS attempt_state, a.call_sid, a.call_status, a.answered_by,
       a.duration, a.sip_response_code, a.error_code, a.error_message, a.outcome,
       a.queue_time_ms, a.requested_at, a.final_at
FROM call_attempts a
JOIN contacts k ON k.id = a.contact_id
JOIN campaigns c ON c.id = a.campaign_id;
