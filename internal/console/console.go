// Package console is lazaret's web console: a small single-page app in
// plain JavaScript, embedded in the binary, that lists jobs, shows their
// details, searches by SHA-256, shows the engines and uploads files, all
// through the JSON API on the same origin with the user's bearer token.
//
// The console holds no data of its own, so its handler needs no
// authentication: it serves index.html at / and a few assets under
// /assets/, with a strict Content-Security-Policy (no inline script, no
// other origin). Every other path answers 404. There is no build step;
// the assets are the files in assets/.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"
)

//go:embed assets
var assetFS embed.FS

// contentSecurityPolicy is sent with every answer: everything comes from
// the console's own origin, nothing inline runs, and the page cannot be
// framed.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// contentTypes maps the assets' extensions to their types, so that the
// answer does not depend on the host's MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// file is one served asset.
type file struct {
	contentType string
	etag        string
	body        []byte
}

// files maps URL paths to assets: index.html at / and every other asset
// at /assets/NAME.
var files = mustLoad()

func mustLoad() map[string]file {
	m, err := load(assetFS)
	if err != nil {
		panic(err) // the embedded files are fixed at build time; tests cover them
	}
	return m
}

func load(fsys fs.FS) (map[string]file, error) {
	entries, err := fs.ReadDir(fsys, "assets")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	m := map[string]file{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil, fmt.Errorf("console: asset %s: no content type for its extension", name)
		}
		b, err := fs.ReadFile(fsys, "assets/"+name)
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		sum := sha256.Sum256(b)
		f := file{contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, body: b}
		if name == "index.html" {
			m["/"] = f
		} else {
			m["/assets/"+name] = f
		}
	}
	if _, ok := m["/"]; !ok {
		return nil, fmt.Errorf("console: assets/index.html is missing")
	}
	return m, nil
}

// Handler returns the console's handler. Mount it at "GET /": it serves
// the page at / and its assets under /assets/, and answers 404 in the
// API's JSON error format for any other path, 405 for methods other than
// GET and HEAD.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	f, ok := files[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the console answers GET and HEAD only")
		return
	}
	h.Set("Content-Type", f.contentType)
	// No hashed file names, so revalidate each time; the ETag makes that
	// a 304.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// writeError answers like the API does: {"error": ..., "code": ...}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]string{"error": msg, "code": code})
}
