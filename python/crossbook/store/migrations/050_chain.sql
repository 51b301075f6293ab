-- 050: chain state. The UMA watcher's cursor and the oracle/adapter logs it has applied (so a restart
-- backfills from where it stopped and a reorg can take logs back), and the transaction manager's
-- single-writer nonce allocator plus every signed attempt (so "nonce too low" can look up the receipt
-- of every hash sent for a nonce, and a restart mid-flight loses nothing). Owned by crossbook.chain.

CREATE TABLE chain_watch_cursors (
    name        text PRIMARY KEY,
    chain_id    integer NOT NULL,
    last_block  bigint NOT NULL,
    last_hash   text NOT NULL,
    head        bigint NOT NULL DEFAULT 0,
    finalized   bigint NOT NULL DEFAULT 0,
    finality    text NOT NULL DEFAULT 'tag' CHECK (finality IN ('tag', 'confirmations')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chain_oracle_logs (
    watcher       text NOT NULL REFERENCES chain_watch_cursors (name) ON DELETE CASCADE,
    block_number  bigint NOT NULL,
    block_hash    text NOT NULL,
    log_index     integer NOT NULL,
    tx_hash       text NOT NULL,
    address       text NOT NULL,
    event         text NOT NULL,
    question_id   text NOT NULL,
    condition_id  text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (watcher, block_hash, log_index)
);
CREATE INDEX chain_oracle_logs_condition_idx ON chain_oracle_logs (condition_id, block_number);

CREATE TABLE chain_nonces (
    chain_id    integer NOT NULL,
    address     text NOT NULL,
    next_nonce  bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, address)
);

-- chain_txs (001) is the logical transaction: one row per (chain, account, nonce). `status` carries
-- the confidence gauge: new (signed, not yet accepted) | broadcasting | mined | confirmed | failed.
ALTER TABLE chain_txs
    ADD COLUMN kind             text NOT NULL DEFAULT 'send' CHECK (kind IN ('send', 'cancel')),
    ADD COLUMN to_address       text,
    ADD COLUMN value_wei        numeric(78, 0) NOT NULL DEFAULT 0,
    ADD COLUMN data             text NOT NULL DEFAULT '0x',
    ADD COLUMN gas              bigint NOT NULL DEFAULT 21000,
    ADD COLUMN max_fee_wei      numeric(78, 0),
    ADD COLUMN max_tip_wei      numeric(78, 0),
    ADD COLUMN attempts         integer NOT NULL DEFAULT 0,
    ADD COLUMN last_sent_at     timestamptz,
    ADD COLUMN mined_block      bigint,
    ADD COLUMN mined_block_hash text,
    ADD COLUMN error            text;
CREATE UNIQUE INDEX chain_txs_one_per_nonce ON chain_txs (chain_id, from_address, nonce);

CREATE TABLE chain_tx_attempts (
    tx_hash      text PRIMARY KEY,
    tx_id        bigint NOT NULL REFERENCES chain_txs (id),
    max_fee_wei  numeric(78, 0) NOT NULL,
    max_tip_wei  numeric(78, 0) NOT NULL,
    raw          text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chain_tx_attempts_tx_idx ON chain_tx_attempts (tx_id);
