// Package client talks to a running lazaret server: it asks for a cached
// verdict by SHA-256 first and uploads only on a miss. `lazaret scan
// --server` uses it, so an application's scan hook (Pulp's
// SECURITY_SCAN_SHELL) pays no engine start-up per call.
package client

import (
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
)

// Client is a lazaret API client. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for the server at base ("http://host:8080").
// token may be "". conns is how many connections to keep open.
func New(base, token string, conns int) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want http(s)://host:port", base)
	}
	if conns < 1 {
		conns = 4
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	tr.MaxConnsPerHost = conns
	return &Client{
		base:  strings.TrimRight(base, "/"),
		token: token,
		http:  &http.Client{Transport: tr},
	}, nil
}

// maxReply bounds a reply body.
const maxReply = 16 << 20

type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.http.Do(req)
}

// Verdict returns the server's cached verdict for content, or nil when it
// has none.
func (c *Client) Verdict(ctx context.Context, sha256 string) (*scan.Job, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/verdicts/"+sha256, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("client: verdict: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxReply))
		return nil, nil
	}
	return decode(resp, "verdict")
}

// Scan uploads a sample to POST /v1/scan and returns its job. A 503 with
// a job (an engine could not answer) returns the job, whose verdict is
// error.
func (c *Client) Scan(ctx context.Context, name string, body io.Reader, size int64) (*scan.Job, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/v1/scan?name="+url.QueryEscape(name), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if size >= 0 {
		req.ContentLength = size
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("client: scan: %w", err)
	}
	defer resp.Body.Close()
	return decode(resp, "scan")
}

func decode(resp *http.Response, what string) (*scan.Job, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("client: %s: read reply: %w", what, err)
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
		var j scan.Job
		if err := json.Unmarshal(b, &j); err == nil && j.Status == scan.Done && j.Verdict.Valid() {
			return &j, nil
		}
	}
	var e apiError
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("client: %s: %s (%d %s)", what, e.Error, resp.StatusCode, e.Code)
	}
	return nil, fmt.Errorf("client: %s: unexpected reply %d", what, resp.StatusCode)
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// DefaultTimeout bounds one upload's wait for a verdict.
const DefaultTimeout = 30 * time.Minute
