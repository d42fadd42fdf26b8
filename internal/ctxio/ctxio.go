// Package ctxio makes long copies stop when their context ends: a reader
// that checks the context before every read, so a stalled or cancelled
// caller stops a multi-GB spool or upload between two chunks.
package ctxio

import (
	"context"
	"io"
)

// Reader returns a reader over r that fails with ctx's error once ctx
// ends.
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
