-- The verdict cache lives in the jobs table: a job remembers the engines
-- key its clean or infected verdict was made (or answered) under, and a
-- lookup takes the newest such job for the content through the sha256
-- index that the jobs table has anyway. A separate verdicts table cost
-- every scan a second row and a random page written.

-- +goose Up
ALTER TABLE jobs ADD COLUMN engines_key TEXT NOT NULL DEFAULT '';
UPDATE jobs SET engines_key = v.engines_key
    FROM verdicts v WHERE v.job_id = jobs.id AND v.sha256 = jobs.sha256 AND v.verdict = jobs.verdict;
DROP TABLE verdicts;

-- +goose Down
CREATE TABLE verdicts (
    sha256      TEXT    NOT NULL,
    engines_key TEXT    NOT NULL,
    verdict     TEXT    NOT NULL CHECK (verdict IN ('clean', 'infected')),
    findings    TEXT    NOT NULL DEFAULT '[]',
    engines     TEXT    NOT NULL DEFAULT '[]',
    job_id      TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (sha256, engines_key)
) STRICT, WITHOUT ROWID;
INSERT INTO verdicts (sha256, engines_key, verdict, findings, engines, job_id, created_at)
    SELECT sha256, engines_key, verdict, findings, engines, id, COALESCE(finished_at, updated_at)
    FROM jobs WHERE engines_key <> '' AND verdict IN ('clean', 'infected') AND status = 'done'
    ORDER BY id
    ON CONFLICT (sha256, engines_key) DO UPDATE SET
    verdict = excluded.verdict, findings = excluded.findings, engines = excluded.engines,
    job_id = excluded.job_id, created_at = excluded.created_at;
ALTER TABLE jobs DROP COLUMN engines_key;
