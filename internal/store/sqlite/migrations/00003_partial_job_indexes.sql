-- Most jobs are done and clean, and every index entry is a page written
-- per job: index only the jobs a filter looks for among many (those not
-- done yet, those not clean). A filter on status done or verdict clean
-- matches most of the table and walks it by id, newest first, instead.
-- Queries repeat the index's condition so that SQLite uses it.

-- +goose Up
DROP INDEX jobs_status_id;
DROP INDEX jobs_verdict_id;
CREATE INDEX jobs_unfinished_id ON jobs (status, id) WHERE status <> 'done';
CREATE INDEX jobs_flagged_id ON jobs (verdict, id) WHERE verdict <> 'clean';

-- +goose Down
DROP INDEX jobs_flagged_id;
DROP INDEX jobs_unfinished_id;
CREATE INDEX jobs_status_id  ON jobs (status, id);
CREATE INDEX jobs_verdict_id ON jobs (verdict, id);
