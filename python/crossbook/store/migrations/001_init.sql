-- 001: the base schema. Later issues add tables/columns with new numbered files; never edit this one
-- after it has shipped (the migrator refuses a changed checksum).

CREATE TABLE market_pairs (
    internal_id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    poly_condition_id     text NOT NULL UNIQUE,
    kalshi_ticker         text NOT NULL UNIQUE,
    logic_status          varchar(20) NOT NULL DEFAULT 'Unverified'
                          CHECK (logic_status IN ('Verified', 'Unverified')),
    is_halted             boolean NOT NULL DEFAULT false,
    last_undisputed_price numeric,
    polarity              varchar(10) CHECK (polarity IN ('same', 'inverted')),
    poly_title            text NOT NULL DEFAULT '',
    kalshi_title          text NOT NULL DEFAULT '',
    last_verdict_id       bigint,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- a Verified pair always says which way round it trades
    CONSTRAINT verified_has_polarity CHECK (logic_status <> 'Verified' OR polarity IS NOT NULL)
);

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    handle      text NOT NULL UNIQUE,
    disabled    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id),
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE orders (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_order_id  text NOT NULL UNIQUE,
    user_id          uuid REFERENCES users (id),
    pair_id          uuid REFERENCES market_pairs (internal_id),
    venue            text NOT NULL CHECK (venue IN ('polymarket', 'kalshi')),
    market           text NOT NULL,
    side             text NOT NULL CHECK (side IN ('buy', 'sell')),
    outcome          text NOT NULL CHECK (outcome IN ('yes', 'no')),
    price            numeric NOT NULL CHECK (price >= 0 AND price <= 1),
    size             numeric NOT NULL CHECK (size > 0),
    status           text NOT NULL DEFAULT 'new',
    venue_order_id   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user_idx ON orders (user_id);

CREATE TABLE trades (
    id              bigserial PRIMARY KEY,
    order_id        uuid NOT NULL REFERENCES orders (id),
    venue           text NOT NULL CHECK (venue IN ('polymarket', 'kalshi')),
    venue_trade_id  text NOT NULL,
    price           numeric NOT NULL,
    size            numeric NOT NULL,
    fee             numeric NOT NULL DEFAULT 0,
    executed_at     timestamptz NOT NULL,
    UNIQUE (venue, venue_trade_id)
);

CREATE TABLE chain_txs (
    id            bigserial PRIMARY KEY,
    chain_id      integer NOT NULL,
    from_address  text NOT NULL,
    nonce         bigint NOT NULL,
    tx_hash       text UNIQUE,
    purpose       text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'pending',
    raw           jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chain_txs_nonce_idx ON chain_txs (chain_id, from_address, nonce);

-- One row per consensus run, kept forever: what was asked, who answered, what they said, why.
CREATE TABLE verdicts (
    id                 bigserial PRIMARY KEY,
    pair_ref           text NOT NULL,
    poly_condition_id  text,
    kalshi_ticker      text,
    status             varchar(20) NOT NULL CHECK (status IN ('Verified', 'Unverified')),
    polarity           varchar(10) CHECK (polarity IN ('same', 'inverted')),
    extractor_a        text NOT NULL,
    extractor_b        text NOT NULL,
    judge              text NOT NULL,
    reasons            jsonb NOT NULL DEFAULT '[]'::jsonb,
    extractions        jsonb NOT NULL DEFAULT '{}'::jsonb,
    checks             jsonb NOT NULL DEFAULT '[]'::jsonb,
    prompts            jsonb NOT NULL DEFAULT '{}'::jsonb,
    raw_replies        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verdicts_pair_idx ON verdicts (poly_condition_id, kalshi_ticker);

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    action   text NOT NULL,
    subject  text NOT NULL DEFAULT '',
    detail   jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
