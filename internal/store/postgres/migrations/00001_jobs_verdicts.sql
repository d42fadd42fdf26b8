-- The jobs and the verdict cache. Structured parts of a job (source,
-- findings, engines, actions) are jsonb; the columns that ListJobs filters
-- on are plain, indexed scalars. IDs are ULIDs compared byte-wise (COLLATE
-- "C"), so that ordering by id is ordering by creation time whatever the
-- database's locale.

-- +goose Up
CREATE TABLE jobs (
    id          text COLLATE "C" NOT NULL PRIMARY KEY,
    status      text        NOT NULL CHECK (status IN ('queued', 'running', 'done')),
    verdict     text        NOT NULL DEFAULT '' CHECK (verdict IN ('', 'clean', 'infected', 'error', 'skipped')),
    reason      text        NOT NULL DEFAULT '',
    name        text        NOT NULL DEFAULT '',
    size        bigint      NOT NULL DEFAULT 0,
    sha256      text        NOT NULL DEFAULT '',
    bucket      text        NOT NULL DEFAULT '',
    source      jsonb       NOT NULL DEFAULT '{}',
    findings    jsonb       NOT NULL DEFAULT '[]',
    engines     jsonb       NOT NULL DEFAULT '[]',
    actions     jsonb       NOT NULL DEFAULT '[]',
    cached      boolean     NOT NULL DEFAULT false,
    error       text        NOT NULL DEFAULT '',
    attempts    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX jobs_status_id  ON jobs (status, id);
CREATE INDEX jobs_verdict_id ON jobs (verdict, id);
CREATE INDEX jobs_sha256_id  ON jobs (sha256, id);
CREATE INDEX jobs_bucket_id  ON jobs (bucket, id);
CREATE INDEX jobs_created_at ON jobs (created_at);

CREATE TABLE verdicts (
    sha256      text        NOT NULL,
    engines_key text        NOT NULL,
    verdict     text        NOT NULL CHECK (verdict IN ('clean', 'infected')),
    findings    jsonb       NOT NULL DEFAULT '[]',
    engines     jsonb       NOT NULL DEFAULT '[]',
    job_id      text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (sha256, engines_key)
);

-- +goose Down
DROP TABLE verdicts;
DROP TABLE jobs;
