-- 004: execution recovery and positions. An intent row carries its planned legs with their client
-- order ids before the first order leaves, so a restarted executor can ask the venues about each one.
-- Positions are kept per user and instrument, updated in the same transaction as the fills that move
-- them (average-cost basis; fees are charged to realized PnL). Owned by crossbook.execution.

ALTER TABLE execution_intents
    ADD COLUMN user_ref      text NOT NULL DEFAULT '',
    ADD COLUMN legs          jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN recovered_at  timestamptz;
CREATE INDEX execution_intents_open_idx ON execution_intents (created_at) WHERE status = 'new';

ALTER TABLE orders ADD COLUMN user_ref text NOT NULL DEFAULT '';
CREATE INDEX orders_user_ref_idx ON orders (user_ref, created_at);

CREATE TABLE positions (
    user_ref      text NOT NULL,
    venue         text NOT NULL CHECK (venue IN ('polymarket', 'kalshi')),
    market        text NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('yes', 'no')),
    pair_ref      text NOT NULL DEFAULT '',
    quantity      numeric NOT NULL DEFAULT 0,   -- signed: > 0 long
    cost          numeric NOT NULL DEFAULT 0,   -- cost basis of the open quantity (signed like it)
    realized_pnl  numeric NOT NULL DEFAULT 0,   -- closed trades, minus every fee paid
    fees          numeric NOT NULL DEFAULT 0,
    bought        numeric NOT NULL DEFAULT 0,
    sold          numeric NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_ref, venue, market, outcome)
);
