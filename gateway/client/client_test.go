package client

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"gateway/internal/leakcheck"
)

func TestDo(t *testing.T) {
	leakcheck.Check(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b := make([]byte, r.ContentLength)
		r.Body.Read(b)
		w.Write(b)
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"error":"nat44: external port already mapped"}`))
	})
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })

	c := New(sock)
	var out map[string]int
	if err := c.Do("POST", "/echo", map[string]int{"a": 1}, &out); err != nil || out["a"] != 1 {
		t.Fatalf("Do = %v, %v", out, err)
	}
	if err := c.Do("GET", "/fail", nil, nil); err == nil || !strings.Contains(err.Error(), "already mapped") {
		t.Fatalf("error status: %v", err)
	}
	if err := New(filepath.Join(t.TempDir(), "none")).Do("GET", "/", nil, nil); err == nil || !strings.Contains(err.Error(), "daemon running") {
		t.Fatalf("no daemon: %v", err)
	}
}
