-- 005: a routed order (one buy/sell split across both venues by depth) is an intent of its own kind.
ALTER TABLE execution_intents DROP CONSTRAINT execution_intents_kind_check;
ALTER TABLE execution_intents ADD CONSTRAINT execution_intents_kind_check CHECK (kind IN ('limit', 'pair', 'route'));
