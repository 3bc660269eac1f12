package httpsrv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gateway/internal/leakcheck"
)

func serve(t *testing.T, l Limits, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, l, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return ln.Addr().String()
}

// roundTrip writes raw to addr and returns the status line of the answer,
// or the error that ended the connection.
func roundTrip(addr, raw string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestLimits(t *testing.T) {
	leakcheck.Check(t)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprintf(w, "%d", len(b))
	})
	addr := serve(t, Limits{MaxHeaderBytes: 1024, MaxBodyBytes: 100, ReadHeaderTimeout: 200 * time.Millisecond, MaxConns: 2}, echo)
	for _, tt := range []struct {
		name, raw, want string
	}{
		{"small", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 200 OK"},
		{"declared body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + strings.Repeat("a", 101), "HTTP/1.1 413 Request Entity Too Large"},
		{"chunked body too large", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n" + strings.Repeat("a", 128) + "\r\n0\r\n\r\n", "HTTP/1.1 413 Request Entity Too Large"},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 8192) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
	} {
		if got, err := roundTrip(addr, tt.raw); got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	// A client that never finishes its headers is cut off.
	start := time.Now()
	if got, err := roundTrip(addr, "GET / HTTP/1.1\r\nHost: x\r\n"); got != "" && !strings.HasPrefix(got, "HTTP/1.1 408") {
		t.Errorf("slow headers: %q, %v", got, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a slow client held its connection %v", d)
	}
}

func TestMaxConns(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	addr := serve(t, Limits{MaxConns: 1}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // the first is being served
	// The second connection is not served while the first holds the
	// only slot.
	second := make(chan string, 1)
	go func() {
		got, _ := roundTrip(addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		second <- got
	}()
	select {
	case got := <-second:
		t.Fatalf("a second connection was served past the cap: %q", got)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	first.Close()
	if got := <-second; got != "HTTP/1.1 200 OK" {
		t.Errorf("second connection after the first closed: %q", got)
	}
}
