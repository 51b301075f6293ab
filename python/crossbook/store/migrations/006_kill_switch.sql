-- 006: per-user kill switch. While engaged, every new intent of that user is refused with the reason;
-- engaging it cancels the user's open orders on both venues. Kept across restarts. Owned by execution.
CREATE TABLE kill_switches (
    user_ref     text PRIMARY KEY,
    reason       text NOT NULL,
    engaged_at   timestamptz NOT NULL DEFAULT now(),
    engaged_by   text NOT NULL DEFAULT ''
);
