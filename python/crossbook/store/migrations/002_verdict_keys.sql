-- 002: `pairs sync` keys each verdict by a hash of both markets' resolution texts, so a re-run (or a run
-- restarted after a crash) judges only what it has not judged yet with the same extractors and judge.

ALTER TABLE verdicts ADD COLUMN texts_sha256 text;

CREATE UNIQUE INDEX verdicts_texts_key_uq ON verdicts (texts_sha256, extractor_a, extractor_b, judge)
    WHERE texts_sha256 IS NOT NULL;
