-- The notification outbox: every webhook delivery is kept until it is
-- delivered, and kept as failed (visible, counted) when it never is.

-- +goose Up
CREATE TABLE deliveries (
    id         text        COLLATE "C" PRIMARY KEY,
    target     text        NOT NULL,
    event      text        NOT NULL,
    body       bytea       NOT NULL,
    state      text        NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts   integer     NOT NULL DEFAULT 0,
    next_at    timestamptz NOT NULL,
    last_error text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
CREATE INDEX deliveries_state ON deliveries (state, created_at);

-- +goose Down
DROP TABLE deliveries;
