-- The jobs and the verdict cache. Structured parts of a job (source,
-- findings, engines, actions) are JSON text; the columns that ListJobs
-- filters on are plain, indexed scalars. Times are integer microseconds
-- since the Unix epoch, UTC.

-- +goose Up
CREATE TABLE jobs (
    id          TEXT    NOT NULL PRIMARY KEY,
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'done')),
    verdict     TEXT    NOT NULL DEFAULT '' CHECK (verdict IN ('', 'clean', 'infected', 'error', 'skipped')),
    reason      TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL DEFAULT '',
    size        INTEGER NOT NULL DEFAULT 0,
    sha256      TEXT    NOT NULL DEFAULT '',
    bucket      TEXT    NOT NULL DEFAULT '',
    source      TEXT    NOT NULL DEFAULT '{}',
    findings    TEXT    NOT NULL DEFAULT '[]',
    engines     TEXT    NOT NULL DEFAULT '[]',
    actions     TEXT    NOT NULL DEFAULT '[]',
    cached      INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    updated_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Every index is a page written per job, and the embedded store's cost is
-- mostly its writes: the table is keyed by id itself (WITHOUT ROWID), a
-- time filter is an id range (ids are ULIDs), and only jobs from buckets
-- go into the bucket index (queries add "bucket <> ''" to use it).
CREATE INDEX jobs_status_id  ON jobs (status, id);
CREATE INDEX jobs_verdict_id ON jobs (verdict, id);
CREATE INDEX jobs_sha256_id  ON jobs (sha256, id);
CREATE INDEX jobs_bucket_id  ON jobs (bucket, id) WHERE bucket <> '';

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

-- +goose Down
DROP TABLE verdicts;
DROP TABLE jobs;
