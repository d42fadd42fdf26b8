-- The notification outbox: every webhook delivery is kept until it is
-- delivered, and kept as failed (visible, counted) when it never is.

-- +goose Up
CREATE TABLE deliveries (
    id         TEXT    NOT NULL PRIMARY KEY,
    target     TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    body       BLOB    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,
    last_error TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
CREATE INDEX deliveries_state ON deliveries (state, created_at);

-- +goose Down
DROP TABLE deliveries;
