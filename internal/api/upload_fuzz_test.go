package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strings"
	"testing"
)

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// upload is one file eachUpload handed over: its name and all its body.
type upload struct {
	name string
	body string
}

// FuzzEachUpload runs eachUpload on any request body and Content-Type,
// behind the body limit ServeHTTP sets (limit bytes), with a handler that
// reads each file to its end as the pipeline does:
//
//   - nothing panics, and at most limit+1 bytes of the body are read;
//   - an error is an *Error with status 400 or 413: 413 exactly when the
//     body met the limit;
//   - a raw (not multipart) body is one file named by ?name=, read whole
//     when it fits, else refused with 413;
//   - a multipart body that is accepted is the files named "file" that
//     mime/multipart reads in it, each whole, in order, at least one and
//     at most maxUploads. One that goes over the limit is refused with
//     413, also when the limit cuts a part's header or a boundary line,
//     unless its closing boundary came within the limit: the bytes after
//     it are never needed;
//   - the count eachUpload returns is the files handed over.
func FuzzEachUpload(f *testing.F) {
	part := func(boundary string, parts ...[3]string) []byte {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		if err := w.SetBoundary(boundary); err != nil {
			f.Fatal(err)
		}
		for _, p := range parts {
			h := textproto.MIMEHeader{}
			cd := fmt.Sprintf(`form-data; name=%q`, p[0])
			if p[1] != "" {
				cd += fmt.Sprintf(`; filename=%q`, p[1])
			}
			h.Set("Content-Disposition", cd)
			pw, err := w.CreatePart(h)
			if err != nil {
				f.Fatal(err)
			}
			io.WriteString(pw, p[2])
		}
		w.Close()
		return b.Bytes()
	}
	form := "multipart/form-data; boundary=XyZ"
	many := make([][3]string, maxUploads+1)
	for i := range many {
		many[i] = [3]string{"file", fmt.Sprintf("f%d", i), "x"}
	}
	for _, s := range []struct {
		ct    string
		body  []byte
		limit uint16
	}{
		{"application/octet-stream", []byte("X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR"), 1024},
		{"", []byte("raw body over the limit"), 4},
		{"", nil, 0},
		{form, part("XyZ", [3]string{"file", "a.txt", "hello"}, [3]string{"file", "", "no name"}), 4096},
		{form, part("XyZ", [3]string{"other", "", "skipped"}, [3]string{"file", "b.bin", "\x00\xff"}), 4096},
		{form, part("XyZ", [3]string{"other", "", "only"}), 4096},
		{form, part("XyZ", [3]string{"file", "big", strings.Repeat("z", 300)}), 200},
		{form, part("XyZ", [3]string{"file", "a", "1"}, [3]string{"other", "", strings.Repeat("z", 300)}), 200},
		{form, part("XyZ", many...), 65535},
		{form, []byte("--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ncut off"), 4096},
		{form, []byte("--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db=\r\nc\r\n--XyZ--\r\n"), 4096},
		{form, []byte("preamble\r\n--XyZ\r\n\r\n\r\n--XyZ--\r\nepilogue"), 4096},
		{"multipart/form-data", part("XyZ", [3]string{"file", "a", "1"}), 4096},
		{"multipart/mixed; boundary=XyZ", part("XyZ", [3]string{"file", "a", "1"}), 4096},
		{`multipart/form-data; boundary="a b"`, part("a b", [3]string{"file", "a", "1"}), 4096},
		{"multipart/form-data; boundary=XyZ; boundary=Other", nil, 4096},
		{"text/plain; charset=\"", []byte("bad content type"), 4096},
	} {
		f.Add(s.ct, s.body, s.limit)
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte, limit uint16) {
		under := &countingReader{r: bytes.NewReader(body)}
		r := httptest.NewRequest(http.MethodPost, "/v1/scan?name=raw.bin", nil)
		r.Header.Set("Content-Type", ct)
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(under), int64(limit))
		var got []upload
		n, err := eachUpload(r, "file", func(name string, b io.Reader) error {
			data, _ := io.ReadAll(b) // the pipeline reads to the end or an error
			got = append(got, upload{name, string(data)})
			return nil
		})
		if under.n > int64(limit)+1 {
			t.Fatalf("read %d bytes of the body, want at most the limit %d (+1)", under.n, limit)
		}
		if n != len(got) || n > maxUploads {
			t.Fatalf("returned %d, handed over %d files; want the same, at most %d", n, len(got), maxUploads)
		}
		over := under.n > int64(limit) // the limit's error was met
		if err != nil {
			var ae *Error
			switch {
			case !errors.As(err, &ae) || (ae.Status != http.StatusBadRequest && ae.Status != http.StatusRequestEntityTooLarge):
				t.Fatalf("got error %v (%T), want an *Error with status 400 or 413", err, err)
			case ae.Status == http.StatusRequestEntityTooLarge && !over:
				t.Fatalf("%d-byte body, limit %d: got status 413 (%v) for a body within the limit", len(body), limit, err)
			case ae.Status != http.StatusRequestEntityTooLarge && over:
				t.Fatalf("%d-byte body, limit %d: got status %d (%v) for a body over the limit, want 413", len(body), limit, ae.Status, err)
			}
		}

		mt, params, _ := mime.ParseMediaType(ct)
		if !strings.HasPrefix(mt, "multipart/") {
			if n != 1 {
				t.Fatalf("raw body: got %d files, want 1", n)
			}
			fits := len(body) <= int(limit)
			if fits && (err != nil || got[0] != upload{"raw.bin", string(body)}) {
				t.Fatalf("raw body within the limit: got %+v, %v; want it whole as raw.bin", got, err)
			}
			if !fits && err == nil {
				t.Fatalf("raw %d-byte body, limit %d: got no error", len(body), limit)
			}
			return
		}
		if err != nil {
			return
		}
		want, ok := parseUploads(body, params["boundary"])
		if !ok || n < 1 || !slices.Equal(got, want) {
			t.Fatalf("multipart %q: got %+v, want %+v (parsed: %v)", body, got, want, ok)
		}
	})
}

// parseUploads reads body as mime/multipart does on its own, without a
// limit, and returns the parts named "file"; ok is false when the body
// is malformed.
func parseUploads(body []byte, boundary string) (out []upload, ok bool) {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out, true
		}
		if err != nil {
			return out, false
		}
		if p.FormName() != "file" {
			continue
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return out, false
		}
		name := p.FileName()
		if name == "" {
			name = "file"
		}
		out = append(out, upload{name, string(data)})
	}
}
