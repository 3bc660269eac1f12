// Package ui serves the web panel's pages: static files, embedded and
// gzipped at build time, that render in the browser from the JSON API
// (docs/api.md). src/ holds the sources, dist/ what is embedded;
// `go generate` (run by `make assets`) rebuilds dist/ from src/.
package ui

//go:generate go run ./gen

import (
	"io"
	"net/http"
	"strconv"
	"strings"
)

// asset is one file of the panel (assets.go, made by gen).
type asset struct {
	name  string
	gz    string // gzipped
	ctype string
	etag  string
}

// Handler serves the panel: / is the page (never cached: it names the
// current assets), /s/VERSION/NAME the other files (cached for good when
// VERSION is the build's). It answers 404 for anything else; the caller
// routes /api/ elsewhere.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, cache := "", "no-cache"
		switch p := r.URL.Path; {
		case p == "/" || p == "/index.html":
			name = "index.html"
		case strings.HasPrefix(p, "/s/"):
			v, n, ok := strings.Cut(p[len("/s/"):], "/")
			if !ok || n == "index.html" || strings.Contains(n, "/") {
				break
			}
			name = n
			if v == version {
				cache = "public, max-age=31536000, immutable"
			}
		}
		a, ok := find(name)
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", cache)
		h.Set("ETag", "W/"+a.etag)
		h.Set("Vary", "Accept-Encoding")
		h.Set("X-Content-Type-Options", "nosniff")
		if match(r.Header.Get("If-None-Match"), a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", strconv.Itoa(len(a.gz)))
			if r.Method == http.MethodGet {
				io.WriteString(w, a.gz)
			}
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		b, err := gunzip(a.gz)
		if err != nil {
			http.Error(w, "corrupt asset", http.StatusInternalServerError)
			return
		}
		w.Write(b)
	})
}

func find(name string) (asset, bool) {
	for _, a := range assets {
		if a.name == name && name != "" {
			return a, true
		}
	}
	return asset{}, false
}

// match reports whether an If-None-Match header names etag (weak
// comparison, RFC 9110 section 13.1.2).
func match(header, etag string) bool {
	for rest := header; rest != ""; {
		var t string
		t, rest, _ = strings.Cut(rest, ",")
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip: named
// (or *) without q=0 (RFC 9110 section 12.5.3).
func acceptsGzip(header string) bool {
	star, gz := false, -1
	for rest := header; rest != ""; {
		var t string
		t, rest, _ = strings.Cut(rest, ",")
		coding, params, _ := strings.Cut(t, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		ok := !zeroQ(params)
		switch coding {
		case "gzip", "x-gzip":
			gz = b2i(ok)
		case "*":
			star = ok
		}
	}
	if gz >= 0 {
		return gz == 1
	}
	return star
}

func zeroQ(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			v = strings.TrimRight(strings.TrimSpace(v), "0")
			return v == "" || v == "." || v == "0."
		}
	}
	return false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
