package pd_test

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"gateway/dhcp/dhcp6"
	"gateway/dhcp/pd"
	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/internal/leakcheck"
	"gateway/internal/testenv"
)

// labClient runs a pd.Client inside the lab's gateway host and collects
// what it notifies.
type labClient struct {
	c      *pd.Client
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	leases []pd.Lease
	ch     chan pd.Lease
}

func startLabClient(t *testing.T, l *lab.Lab, dir string) *labClient {
	t.Helper()
	lc := &labClient{done: make(chan error, 1), ch: make(chan pd.Lease, 64)}
	c, err := pd.New(pd.Config{Iface: lab.GatewayWAN, HintLen: 56, Address: true, StateDir: dir,
		ReleaseTimeout: 2 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		func(ls pd.Lease) { lc.ch <- ls })
	if err != nil {
		t.Fatal(err)
	}
	lc.c = c
	ctx, cancel := context.WithCancel(context.Background())
	lc.cancel = cancel
	// Run opens its sockets on the goroutine that calls it: inside Do,
	// in the gateway's namespace.
	go func() { lc.done <- l.Do(lab.Gateway, func() error { return c.Run(ctx) }) }()
	t.Cleanup(func() { lc.stop(t) })
	return lc
}

func (lc *labClient) stop(t *testing.T) {
	t.Helper()
	if lc.cancel == nil {
		return
	}
	lc.cancel()
	lc.cancel = nil
	select {
	case err := <-lc.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Run did not return 10 s after cancel")
	}
}

// next waits for the next notification.
func (lc *labClient) next(t *testing.T, within time.Duration, what string) pd.Lease {
	t.Helper()
	select {
	case ls := <-lc.ch:
		return ls
	case <-time.After(within):
		t.Fatalf("no notification within %v: %s", within, what)
		return pd.Lease{}
	}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestLabDelegation(t *testing.T) {
	leakcheck.Check(t)
	labtest.Skip(t)
	testenv.Tool(t, "dhcpd", "isc-dhcp-server")
	l := labtest.New(t)
	if _, err := l.StartPDServer(lab.PDServerOptions{Preferred: 4 * time.Second, Valid: 6 * time.Second}); err != nil {
		t.Fatal(err)
	}
	sn := sniffWAN(t, l)
	dir := t.TempDir()
	lc := startLabClient(t, l, dir)

	first := lc.next(t, 10*time.Second, "the first delegation")
	if first.Prefix != lab.DelegatedPrefix6 {
		t.Fatalf("delegated %v, want %v", first.Prefix, lab.DelegatedPrefix6)
	}
	if a := first.Addr.Addr(); !first.Addr.IsValid() || a.Less(lab.WANPool6[0]) || lab.WANPool6[1].Less(a) {
		t.Errorf("IA_NA address %v, want one in %v-%v", first.Addr, lab.WANPool6[0], lab.WANPool6[1])
	}
	out, _ := exec.Command("ip", "-n", l.NS(lab.Gateway), "-6", "addr", "show", "dev", lab.GatewayWAN).CombinedOutput()
	if !strings.Contains(string(out), first.Addr.String()) {
		t.Errorf("address %v not on %s:\n%s", first.Addr, lab.GatewayWAN, out)
	}

	// T1 is 0 from dhcpd: the client renews at 0.5 * 4 s.
	renewed := lc.next(t, 6*time.Second, "a renewal")
	if renewed.Prefix != first.Prefix || !renewed.Valid.After(first.Valid) {
		t.Fatalf("renewal gave %v valid until %v, want %v valid after %v", renewed.Prefix, renewed.Valid, first.Prefix, first.Valid)
	}

	// A crash and a restart: the remembered lease is rebound, and
	// confirmed with the same prefix.
	pd.SkipRelease(lc.c)
	lc.stop(t)
	lc = startLabClient(t, l, dir)
	rebound := lc.next(t, 10*time.Second, "the prefix after a crash")
	if rebound.Prefix != first.Prefix {
		t.Fatalf("after a crash: %v, want %v", rebound.Prefix, first.Prefix)
	}
	if log, _ := os.ReadFile(filepath.Join(l.Dir, "logs", lab.PDServer+".log")); !strings.Contains(string(log), "Rebind message from") {
		t.Errorf("dhcpd saw no Rebind:\n%s", log)
	}

	// A restart: the client releases the prefix on the way out, and asks
	// for it again by its hint.
	lc.stop(t)
	for ls := range len(lc.ch) {
		_ = ls
		if w := <-lc.ch; !w.Prefix.IsValid() {
			break
		}
	}
	if _, ok := lc.c.Lease(); ok {
		t.Errorf("Lease() still reports a lease after the release")
	}
	if log, _ := os.ReadFile(filepath.Join(l.Dir, "logs", lab.PDServer+".log")); !strings.Contains(string(log), "Release message from") {
		t.Errorf("dhcpd saw no Release:\n%s", log)
	}
	lc2 := startLabClient(t, l, dir)
	again := lc2.next(t, 10*time.Second, "the prefix after a restart")
	if again.Prefix != first.Prefix {
		t.Fatalf("after a restart: %v, want %v", again.Prefix, first.Prefix)
	}

	// The server goes away: the prefix is withdrawn when its valid
	// lifetime ends, not before.
	if err := l.StopPDServer(); err != nil {
		t.Fatal(err)
	}
	last := again
	for {
		ls := lc2.next(t, 10*time.Second, "the withdrawal")
		if !ls.Prefix.IsValid() {
			if now := time.Now(); now.Before(last.Valid.Add(-time.Second)) {
				t.Errorf("withdrawn at %v, before the valid lifetime ended at %v", now, last.Valid)
			}
			break
		}
		last = ls // a renewal that made it before the server stopped
	}
	if log, err := os.ReadFile(filepath.Join(l.Dir, "logs", lab.PDServer+".log")); err == nil && testing.Verbose() {
		t.Logf("dhcpd:\n%s", log)
	}
	if _, ok := lc2.c.Lease(); ok {
		t.Errorf("Lease() still reports a lease after the withdrawal")
	}
	checkWire(t, sn.messages())
}

var capture = flag.Bool("capture", false, "TestLabDelegation: write the first DHCPv6 message of each type seen on the WAN to ../dhcp6/testdata/dhcpd")

// checkWire checks every DHCPv6 message seen on the WAN, dhcpd's and
// ours, against the codec: each parses, and encodes back into a message
// that parses to the same value. With -capture, the first of each type
// goes to dhcp6's testdata, where its unit tests read it without root.
func checkWire(t *testing.T, msgs [][]byte) {
	t.Helper()
	seen := make(map[dhcp6.MessageType]bool)
	for _, b := range msgs {
		m, err := dhcp6.ParseMessage(b)
		if err != nil {
			t.Errorf("%x on the WAN does not parse: %v", b, err)
			continue
		}
		wire, err := m.Append(nil)
		if err != nil {
			t.Errorf("%v from the WAN does not encode: %v", m.Type, err)
			continue
		}
		back, err := dhcp6.ParseMessage(wire)
		if err != nil || !reflect.DeepEqual(m, back) {
			t.Errorf("%v from the WAN: round trip gave %+v, %v; want %+v", m.Type, back, err, m)
		}
		if *capture && !seen[m.Type] {
			name := filepath.Join("..", "dhcp6", "testdata", "dhcpd", strings.ToLower(m.Type.String())+".bin")
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Error(err)
			}
		}
		seen[m.Type] = true
	}
	for _, typ := range []dhcp6.MessageType{dhcp6.Solicit, dhcp6.Advertise, dhcp6.Request, dhcp6.Reply, dhcp6.Renew, dhcp6.Rebind, dhcp6.Release} {
		if !seen[typ] {
			t.Errorf("no %v seen on the WAN (%d messages)", typ, len(msgs))
		}
	}
}
