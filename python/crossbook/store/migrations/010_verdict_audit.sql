-- 010: verdicts are the audit trail of the pair verifier (what each model was asked, what it answered, every
-- check), so, like audit_log, they are append-only; and `crossbook pairs show` looks them up by pair.

CREATE FUNCTION verdicts_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'verdicts are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER verdicts_no_update_delete
    BEFORE UPDATE OR DELETE ON verdicts
    FOR EACH ROW EXECUTE FUNCTION verdicts_are_append_only();

CREATE TRIGGER verdicts_no_truncate
    BEFORE TRUNCATE ON verdicts
    FOR EACH STATEMENT EXECUTE FUNCTION verdicts_are_append_only();

CREATE INDEX verdicts_pair_ref_idx ON verdicts (pair_ref, id DESC);
CREATE INDEX verdicts_kalshi_idx ON verdicts (kalshi_ticker, id DESC);
