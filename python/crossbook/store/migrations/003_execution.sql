-- 003: execution. Orders carry their intent, leg, purpose (entry / hedge / unwind), time in force and
-- what the venue filled; every intent is kept with its plan and outcome. Owned by crossbook.execution.

ALTER TABLE orders
    ADD COLUMN intent_id      uuid,
    ADD COLUMN pair_ref       text NOT NULL DEFAULT '',
    ADD COLUMN leg            text NOT NULL DEFAULT '',
    ADD COLUMN purpose        text NOT NULL DEFAULT 'entry' CHECK (purpose IN ('entry', 'hedge', 'unwind')),
    ADD COLUMN time_in_force  text NOT NULL DEFAULT 'GTC' CHECK (time_in_force IN ('GTC', 'FOK', 'FAK')),
    ADD COLUMN filled         numeric NOT NULL DEFAULT 0 CHECK (filled >= 0),
    ADD COLUMN avg_price      numeric,
    ADD COLUMN fee            numeric NOT NULL DEFAULT 0,
    ADD COLUMN reason         text,
    ADD COLUMN resolved_by    text;
CREATE INDEX orders_intent_idx ON orders (intent_id);
CREATE INDEX orders_status_idx ON orders (status) WHERE status IN ('submitting', 'unknown');

CREATE TABLE execution_intents (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('limit', 'pair')),
    pair_ref    text NOT NULL,
    user_id     uuid REFERENCES users (id),
    spec        jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'new',
    result      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
