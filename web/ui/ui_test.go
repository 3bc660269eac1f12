package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gateway/web/ui/internal/build"
)

// TestDistUpToDate fails when dist/ was not rebuilt after a change in
// src/: run `make assets` (go generate ./web/ui).
func TestDistUpToDate(t *testing.T) {
	want, err := build.Dist(os.DirFS("src"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range want {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v: run `make assets`", name, err)
			continue
		}
		if strings.HasSuffix(name, ".gz") {
			// gzip's bytes may differ between Go versions; what counts
			// is what they hold.
			got, b = stdGunzip(t, got), stdGunzip(t, b)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s is stale: run `make assets`", name)
		}
	}
	have, _ := filepath.Glob("dist/*")
	for _, name := range have {
		if _, ok := want[filepath.ToSlash(name)]; !ok {
			t.Errorf("%s has no source in src/: run `make assets`", name)
		}
	}
}

// TestBudget keeps the panel small: the router binary has little room.
func TestBudget(t *testing.T) {
	const budget = 40 << 10
	total := 0
	for _, a := range assets {
		total += len(a.gz)
	}
	if total > budget {
		t.Errorf("assets are %d bytes gzipped, over the budget of %d", total, budget)
	}
	t.Logf("assets: %d bytes gzipped", total)
}

// TestNoInline checks what the panel's CSP (script-src 'self'; style-src
// 'self') would block: inline scripts, styles and handlers.
func TestNoInline(t *testing.T) {
	html, err := os.ReadFile("src/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`<script(?:\s[^>]*)?>\s*[^<\s]`, `<style`, `\sstyle=`, `\son[a-z]+=`, `(?i)https?://`} {
		if m := regexp.MustCompile(re).Find(html); m != nil {
			t.Errorf("index.html has %q (inline code, or a remote asset)", m)
		}
	}
	js, _ := os.ReadFile("src/app.js")
	for _, bad := range []string{"innerHTML", "eval(", "new Function", "style="} {
		if bytes.Contains(js, []byte(bad)) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

func stdGunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHandler(t *testing.T) {
	src, _, err := build.Contents(os.DirFS("src"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tr := &http.Transport{DisableCompression: true}
	get := func(t *testing.T, method, path string, hdr ...string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		r, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Body.Close() })
		return r
	}
	asset := "/s/" + version + "/"
	tests := []struct {
		name, method, path string
		hdr                []string
		code               int
		ctype, encoding    string
		cache              string
		body               string // the source file the body must be, "" for none
	}{
		{"page gzipped", "GET", "/", []string{"Accept-Encoding", "gzip, deflate, br"}, 200, "text/html; charset=utf-8", "gzip", "no-cache", "index.html"},
		{"page plain", "GET", "/", nil, 200, "text/html; charset=utf-8", "", "no-cache", "index.html"},
		{"gzip refused", "GET", "/", []string{"Accept-Encoding", "gzip;q=0, br"}, 200, "text/html; charset=utf-8", "", "no-cache", "index.html"},
		{"star", "GET", "/", []string{"Accept-Encoding", "*"}, 200, "text/html; charset=utf-8", "gzip", "no-cache", "index.html"},
		{"script", "GET", asset + "app.js", []string{"Accept-Encoding", "gzip"}, 200, "text/javascript; charset=utf-8", "gzip", "public, max-age=31536000, immutable", "app.js"},
		{"style", "GET", asset + "style.css", nil, 200, "text/css; charset=utf-8", "", "public, max-age=31536000, immutable", "style.css"},
		{"icon", "GET", asset + "icon.svg", nil, 200, "image/svg+xml", "", "public, max-age=31536000, immutable", "icon.svg"},
		{"old version", "GET", "/s/000000000000/app.js", nil, 200, "text/javascript; charset=utf-8", "", "no-cache", "app.js"},
		{"head", "HEAD", asset + "app.js", []string{"Accept-Encoding", "gzip"}, 200, "text/javascript; charset=utf-8", "gzip", "public, max-age=31536000, immutable", ""},
		{"missing", "GET", asset + "nope.js", nil, 404, "", "", "", ""},
		{"page under s", "GET", asset + "index.html", nil, 404, "", "", "", ""},
		{"no traversal", "GET", "/s/" + version + "/../app.js", nil, 404, "", "", "", ""},
		{"api is not ours", "GET", "/api/v1/status", nil, 404, "", "", "", ""},
		{"post", "POST", "/", nil, 405, "", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, tc.method, tc.path, tc.hdr...)
			if r.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", r.StatusCode, tc.code)
			}
			if tc.code != 200 {
				return
			}
			for h, want := range map[string]string{"Content-Type": tc.ctype, "Content-Encoding": tc.encoding, "Cache-Control": tc.cache, "Vary": "Accept-Encoding"} {
				if got := r.Header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			b, _ := io.ReadAll(r.Body)
			if tc.encoding == "gzip" && tc.method == "GET" {
				b = stdGunzip(t, b)
			}
			if tc.body != "" && !bytes.Equal(b, src[tc.body]) {
				t.Errorf("body is not %s", tc.body)
			}
		})
	}
	t.Run("etag", func(t *testing.T) {
		r := get(t, "GET", asset+"app.js", "Accept-Encoding", "gzip")
		tag := r.Header.Get("ETag")
		if tag == "" {
			t.Fatal("no ETag")
		}
		for _, inm := range []string{tag, strings.TrimPrefix(tag, "W/"), `"x", ` + tag} {
			if r := get(t, "GET", asset+"app.js", "If-None-Match", inm); r.StatusCode != 304 {
				t.Errorf("If-None-Match %s: status %d, want 304", inm, r.StatusCode)
			}
		}
		if r := get(t, "GET", asset+"app.js", "If-None-Match", `"other"`); r.StatusCode != 200 {
			t.Errorf("other ETag: status %d, want 200", r.StatusCode)
		}
	})
	t.Run("page names this build", func(t *testing.T) {
		b, _ := io.ReadAll(get(t, "GET", "/").Body)
		if !bytes.Contains(b, []byte(`src="`+asset[1:]+`app.js"`)) || bytes.Contains(b, []byte(build.Marker)) {
			t.Errorf("index.html does not name %sapp.js:\n%s", asset, b)
		}
	})
}
