package dhcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// storeHarness runs a Server's request handling and its lease journal,
// without sockets, inside a synctest bubble: time.Sleep moves the clock.
// Every ACK is checked, at the moment it is sent, against the journal file:
// its lease must be there, expiring no earlier than the ACK promised.
type storeHarness struct {
	t    *testing.T
	s    *Server
	path string
	stop func()

	mu       sync.Mutex // guards sent, promised
	sent     []Action
	promised map[netip.Addr]Lease // the last ACK per address, unless released since
}

func storeConfig(dir string, headroom time.Duration) Config {
	return Config{
		CoreConfig:          testConfig(),
		Interface:           "lan0",
		StateDir:            dir,
		LeaseHeadroom:       headroom,
		NoConflictDetection: true,
	}
}

// startStore opens the server on cfg.StateDir and runs its batcher.
func startStore(t *testing.T, cfg Config) *storeHarness {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.store.b.Run(ctx); close(done) }()
	h := &storeHarness{
		t:        t,
		s:        s,
		path:     filepath.Join(cfg.StateDir, "leases.jsonl"),
		promised: map[netip.Addr]Lease{},
	}
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() {
		h.stop()
		s.journal.Close()
	})
	return h
}

// crash stops the batcher without a clean shutdown: the journal stays as
// the last fsync left it.
func (h *storeHarness) crash() { h.stop() }

// shutdown is Run's clean end.
func (h *storeHarness) shutdown() {
	h.stop()
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if err := h.s.store.closeExactLocked(h.s.core.Leases()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *storeHarness) reply(a Action) {
	if a.Commit != nil {
		l := *a.Commit
		disk := readJournal(h.t, h.path)
		if got, ok := disk[l.Addr]; !ok || got.MAC != l.MAC || got.Expires.Before(l.Expires) {
			h.t.Errorf("ACK of %s to %s until %v sent while the journal holds %+v", l.Addr, l.MAC, l.Expires, got)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent = append(h.sent, a)
	if a.Commit != nil {
		h.promised[a.Commit.Addr] = *a.Commit
	}
}

// do handles req and waits for the bubble to settle. It returns the reply
// sent for it, if any, and whether that reply left before handle returned.
func (h *storeHarness) do(req *dhcpv4.DHCPv4) (reply *result, immediate bool) {
	h.t.Helper()
	h.mu.Lock()
	n := len(h.sent)
	h.mu.Unlock()
	h.s.handle(toMsg(req), nil, h.reply)
	h.mu.Lock()
	immediate = len(h.sent) > n
	h.mu.Unlock()
	synctest.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sent) > n {
		a := asResult(h.sent[len(h.sent)-1])
		return &a, immediate
	}
	return nil, false
}

func (h *storeHarness) released(addr netip.Addr) {
	h.mu.Lock()
	delete(h.promised, addr)
	h.mu.Unlock()
}

// dora binds k and returns its address.
func (h *storeHarness) dora(k *client) netip.Addr {
	h.t.Helper()
	offer, _ := h.do(k.discover())
	if offer == nil || offer.Reply.MessageType() != dhcpv4.MessageTypeOffer {
		h.t.Fatalf("DISCOVER of %s: no offer", k.mac)
	}
	addr, _ := netip.AddrFromSlice(offer.Reply.YourIPAddr.To4())
	ack, _ := h.do(k.selecting(serverIP, addr))
	if ack == nil || ack.Commit == nil {
		h.t.Fatalf("REQUEST of %s for %s: no ACK", k.mac, addr)
	}
	return addr
}

// renew renews k's lease of addr and reports whether the ACK left at once.
func (h *storeHarness) renew(k *client, addr netip.Addr) (ack Lease, immediate bool) {
	h.t.Helper()
	a, immediate := h.do(k.renew(addr))
	if a == nil || a.Commit == nil {
		h.t.Fatalf("RENEW of %s by %s: no ACK", addr, k.mac)
	}
	return *a.Commit, immediate
}

func (h *storeHarness) syncs() uint64 { return h.s.StoreStats().Syncs }

// readJournal replays the lease journal as New does.
func readJournal(t *testing.T, path string) map[netip.Addr]Lease {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]Lease{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var r storeRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch {
		case r.Lease != nil:
			out[r.Lease.Addr] = *r.Lease
		case r.Release != nil:
			delete(out, *r.Release)
		}
	}
	return out
}

func TestStoreNewBindingIsDurableBeforeItsACK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startStore(t, storeConfig(t.TempDir(), 0))
		k := newClient("02:00:00:00:00:01")
		addr := h.dora(k) // the harness checks the journal as the ACK leaves
		if got := h.syncs(); got != 1 {
			t.Errorf("one new binding: %d fsyncs, want 1", got)
		}
		l := h.promised[addr]
		want := l.Expires.Add(DefaultLeaseTime / 4 * 3)
		if got := readJournal(t, h.path)[addr].Expires; !got.Equal(want) {
			t.Errorf("expiry on disk %v, want the granted %v plus 3/4 of the lease, %v", got, l.Expires, want)
		}
	})
}

func TestStoreRenewals(t *testing.T) {
	const lt = DefaultLeaseTime
	late := 2 * time.Second // a client renews a little after T1: the ACK took time to reach it
	tests := []struct {
		name     string
		headroom time.Duration
		// per renewal, each T1+late after the previous ACK: written?
		written []bool
	}{
		{"default 3/4: one write per two renewals", 0, []bool{false, true, false, true, false, true}},
		{"half the lease: a late renewal is past it", lt / 2, []bool{true, true, true}},
		{"one lease time", lt, []bool{false, true, false, true}},
		{"none: every renewal", -1, []bool{true, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := startStore(t, storeConfig(t.TempDir(), tt.headroom))
				k := newClient("02:00:00:00:00:01")
				addr := h.dora(k)
				var got []bool
				for range tt.written {
					time.Sleep(lt/2 + late)
					before := h.syncs()
					l, immediate := h.renew(k, addr)
					wrote := h.syncs() != before
					if !wrote && !immediate {
						t.Errorf("renewal to %v: no write, yet the ACK waited", l.Expires)
					}
					if disk := readJournal(t, h.path)[addr]; disk.Expires.Before(l.Expires) {
						t.Errorf("renewal to %v: disk holds %v", l.Expires, disk.Expires)
					}
					got = append(got, wrote)
				}
				if diff := cmp.Diff(tt.written, got); diff != "" {
					t.Errorf("renewals written (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestStoreReleaseAndDeclineArePersisted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := startStore(t, storeConfig(dir, 0))
		rel, dec, keep := newClient("02:00:00:00:00:01"), newClient("02:00:00:00:00:02"), newClient("02:00:00:00:00:03")
		relAddr, decAddr, keepAddr := h.dora(rel), h.dora(dec), h.dora(keep)
		before := h.syncs()
		h.do(rel.release(serverIP, relAddr))
		h.do(dec.decline(serverIP, decAddr))
		if got := h.syncs() - before; got != 2 {
			t.Errorf("RELEASE and DECLINE: %d fsyncs, want 2", got)
		}
		disk := readJournal(t, h.path)
		if _, ok := disk[relAddr]; ok {
			t.Errorf("released %s still in the journal", relAddr)
		}
		if _, ok := disk[decAddr]; ok {
			t.Errorf("declined %s still in the journal", decAddr)
		}
		h.crash()
		h2 := startStore(t, storeConfig(dir, 0))
		var addrs []netip.Addr
		for _, l := range h2.s.Leases() {
			addrs = append(addrs, l.Addr)
		}
		if diff := cmp.Diff([]netip.Addr{keepAddr}, addrs, addrComparer); diff != "" {
			t.Errorf("leases after restart (-want +got):\n%s", diff)
		}
	})
}

// TestStoreCrashKeepsEveryPromise runs clients that bind, renew (early,
// on time, late), release, decline and come back, over simulated days,
// then crashes: every lease an ACK promised is back, expiring no earlier
// than promised and no later than the headroom allows, and no address is
// held twice.
func TestStoreCrashKeepsEveryPromise(t *testing.T) {
	for _, headroom := range []time.Duration{0, -1, time.Minute, 2 * DefaultLeaseTime} {
		t.Run(fmt.Sprint("headroom=", headroom), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				h := startStore(t, storeConfig(dir, headroom))
				rng := rand.New(rand.NewPCG(1, uint64(headroom)))
				const n = 40
				clients := make([]*client, n)
				addrs := make([]netip.Addr, n)
				away := make([]time.Time, n) // until then, the client is off
				for i := range clients {
					clients[i] = newClient(fmt.Sprintf("02:00:00:00:01:%02x", i))
				}
				for range 1000 {
					time.Sleep(time.Duration(rng.Int64N(int64(10 * time.Minute))))
					i := rng.IntN(n)
					k := clients[i]
					switch r := rng.IntN(100); {
					case time.Now().Before(away[i]):
					case r < 4:
						// Off for a while, often past its lease: back
						// with the same address, a new binding.
						away[i] = time.Now().Add(time.Duration(rng.Int64N(int64(3 * DefaultLeaseTime))))
					case !addrs[i].IsValid():
						addrs[i] = h.dora(k)
					case r < 7:
						h.do(k.release(serverIP, addrs[i]))
						h.released(addrs[i])
						addrs[i] = netip.Addr{}
					case r < 9:
						h.do(k.decline(serverIP, addrs[i]))
						h.released(addrs[i])
						addrs[i] = netip.Addr{}
					default:
						if a, _ := h.do(k.renew(addrs[i])); a == nil || a.Commit == nil {
							addrs[i] = netip.Addr{} // it expired: NAK
						}
					}
				}
				crashed := time.Now()
				h.crash()
				h2 := startStore(t, storeConfig(dir, headroom))
				got := map[netip.Addr]Lease{}
				for _, l := range h2.s.Leases() {
					got[l.Addr] = l
				}
				maxHeadroom := max(headroom, DefaultLeaseTime/4*3)
				checked := 0
				for addr, p := range h.promised {
					if !p.Expires.After(crashed) {
						continue // expired before the crash
					}
					checked++
					l, ok := got[addr]
					switch {
					case !ok:
						t.Errorf("%s ACKed to %s until %v: gone after the crash", addr, p.MAC, p.Expires)
					case l.MAC != p.MAC:
						t.Errorf("%s ACKed to %s: after the crash it is %s's", addr, p.MAC, l.MAC)
					case l.Expires.Before(p.Expires):
						t.Errorf("%s ACKed until %v: after the crash it ends at %v", addr, p.Expires, l.Expires)
					case l.Expires.After(p.Expires.Add(maxHeadroom)):
						t.Errorf("%s ACKed until %v: after the crash it ends at %v, past the headroom", addr, p.Expires, l.Expires)
					}
				}
				if checked < n/2 {
					t.Errorf("only %d live promises at the crash; the test is too weak", checked)
				}
				byMAC := map[string]netip.Addr{}
				for _, l := range got {
					if other, ok := byMAC[l.MAC]; ok {
						t.Errorf("%s holds %s and %s", l.MAC, other, l.Addr)
					}
					byMAC[l.MAC] = l.Addr
				}
				t.Logf("%d live promises checked; %d fsyncs", checked, h.syncs())
			})
		})
	}
}

func TestStoreCleanShutdownWritesExactExpiries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := startStore(t, storeConfig(dir, 0))
		k := newClient("02:00:00:00:00:01")
		addr := h.dora(k)
		time.Sleep(DefaultLeaseTime / 2)
		l, _ := h.renew(k, addr)
		h.shutdown()
		h2 := startStore(t, storeConfig(dir, 0))
		want := []Lease{l}
		if diff := cmp.Diff(want, h2.s.Leases(), addrComparer); diff != "" {
			t.Errorf("leases after a clean restart (-want +got):\n%s", diff)
		}
		// The first renewal after it is written: nothing on disk covers it.
		time.Sleep(DefaultLeaseTime / 2)
		before := h2.syncs()
		h2.renew(k, addr)
		if h2.syncs() == before {
			t.Error("renewal past the exact expiry on disk: not written")
		}
	})
}

// TestStoreFsyncsPerDay counts the fsyncs of a home LAN over a day: n
// clients with 12h leases join within the first hour, then renew at T1
// (plus the few seconds a real client is late) for 24 hours.
func TestStoreFsyncsPerDay(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		headroom time.Duration
		max      uint64 // fsyncs of the day of renewals
	}{
		{"30 clients, default headroom", 30, 0, 8},
		{"100 clients, default headroom", 100, 0, 10},
		// The cost without headroom: one per renewal, and compactions.
		{"30 clients, no headroom (every renewal)", 30, -1, 30*4 + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := startStore(t, storeConfig(t.TempDir(), tt.headroom))
				rng := rand.New(rand.NewPCG(7, uint64(tt.n)))
				type event struct {
					at   time.Time
					i    int
					addr netip.Addr
				}
				start := time.Now()
				var queue []event
				for i := range tt.n {
					queue = append(queue, event{at: start.Add(time.Duration(rng.Int64N(int64(time.Hour)))), i: i})
				}
				var day uint64
				var renewals int
				var dayStart, end time.Time
				for len(queue) > 0 {
					slices.SortFunc(queue, func(a, b event) int { return a.at.Compare(b.at) })
					e := queue[0]
					queue = queue[1:]
					if !end.IsZero() && e.at.After(end) {
						break
					}
					time.Sleep(e.at.Sub(time.Now()))
					k := newClient(fmt.Sprintf("02:00:00:00:02:%02x", e.i))
					if !e.addr.IsValid() {
						e.addr = h.dora(k)
					} else {
						h.renew(k, e.addr)
						renewals++
					}
					if dayStart.IsZero() && len(queue) == 0 || dayStart.IsZero() && queue[0].addr.IsValid() {
						// every client is bound: the day of renewals starts
						dayStart, day = time.Now(), h.syncs()
						end = dayStart.Add(24 * time.Hour)
					}
					late := time.Duration(rng.Int64N(int64(5 * time.Second)))
					queue = append(queue, event{at: time.Now().Add(DefaultLeaseTime/2 + late), i: e.i, addr: e.addr})
				}
				day = h.syncs() - day
				t.Logf("%d clients, %d renewals in 24h: %d fsyncs (%d bytes written in all)", tt.n, renewals, day, h.s.StoreStats().Bytes)
				if day > tt.max {
					t.Errorf("%d fsyncs in a day, want at most %d", day, tt.max)
				}
			})
		})
	}
}
