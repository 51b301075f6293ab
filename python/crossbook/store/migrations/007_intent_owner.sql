-- 007: which executor owns an unfinished intent. Each executor holds a session advisory lock on its own
-- id for its lifetime (PostgreSQL drops it when the process dies), so a restarted executor reconciles
-- only intents whose owner is gone, never one a live executor is still working on.
ALTER TABLE execution_intents ADD COLUMN owner text NOT NULL DEFAULT '';
