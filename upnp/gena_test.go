package upnp

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gateway/nat44"
)

func TestGENA(t *testing.T) {
	c, n := newCore(t, nat44.Policy{})
	s, err := New(Config{LANs: []LAN{{Name: "lo", Prefix: netip.MustParsePrefix("127.0.0.1/8")}}, StateDir: t.TempDir(), NAT: n, Firewall: n})
	if err != nil {
		t.Fatal(err)
	}
	_ = c
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			req, err := http.ReadRequest(bufio.NewReader(conn))
			if err == nil {
				b, _ := io.ReadAll(req.Body)
				got <- req.Method + " " + req.Header.Get("SEQ") + " " + string(b)
			}
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			conn.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.gena.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	sub := func(cb string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("SUBSCRIBE", "http://127.0.0.1:5000"+pathEvtIP, nil)
		r.RemoteAddr = "127.0.0.1:40000"
		r.Header.Set("CALLBACK", "<"+cb+">")
		r.Header.Set("NT", "upnp:event")
		r.Header.Set("TIMEOUT", "Second-300")
		w := httptest.NewRecorder()
		s.serveHTTP(w, r)
		return w
	}
	// CallStranger: a callback to another host is refused.
	if w := sub("http://10.9.9.9:80/x"); w.Code != http.StatusPreconditionFailed {
		t.Fatalf("foreign callback: %d, want 412", w.Code)
	}
	w := sub("http://" + ln.Addr().String() + "/evt")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("SID"), "uuid:") || w.Header().Get("TIMEOUT") != "Second-300" {
		t.Fatalf("subscribe: %d %v", w.Code, w.Header())
	}
	select {
	case ev := <-got:
		if !strings.HasPrefix(ev, "NOTIFY 0 ") || !strings.Contains(ev, "<ExternalIPAddress>203.0.113.2</ExternalIPAddress>") {
			t.Fatalf("initial event: %s", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no initial event")
	}
	s.gena.changed(pathEvtIP)
	select {
	case ev := <-got:
		if !strings.HasPrefix(ev, "NOTIFY 1 ") {
			t.Fatalf("second event: %s", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after a change")
	}
	// Unsubscribe.
	r := httptest.NewRequest("UNSUBSCRIBE", "http://127.0.0.1:5000"+pathEvtIP, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("SID", w.Header().Get("SID"))
	w2 := httptest.NewRecorder()
	s.serveHTTP(w2, r)
	if w2.Code != 200 || s.gena.len() != 0 {
		t.Fatalf("unsubscribe: %d, %d left", w2.Code, s.gena.len())
	}
	// DNS rebinding: a foreign Host is refused.
	r = httptest.NewRequest("GET", "http://evil.example"+PathRootDesc, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	w3 := httptest.NewRecorder()
	s.serveHTTP(w3, r)
	if w3.Code != http.StatusForbidden {
		t.Fatalf("foreign Host: %d", w3.Code)
	}
}
