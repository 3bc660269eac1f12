package nat44_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/nat44"
	"gateway/nat44/nat44test"
)

// Every service test runs in a synctest bubble: timers fire as soon as all
// goroutines wait, and synctest.Test fails if a goroutine outlives the
// test, which is the goroutine-leak check.

var netipComparers = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

var (
	wanAddr  = netip.MustParseAddr("203.0.113.1")
	wanAddr2 = netip.MustParseAddr("198.51.100.1")
	hostA    = netip.MustParseAddrPort("192.168.1.10:80")
	hostB    = netip.MustParseAddrPort("192.168.1.11:80")
	hostC    = netip.MustParseAddrPort("192.168.1.12:3074")
)

func mapping(p nat44.Proto, port uint16, internal netip.AddrPort, owner nat44.Owner) nat44.Mapping {
	return nat44.Mapping{Proto: p, ExternalPort: port, Internal: internal, Owner: owner}
}

// expiring returns m ending d from now (the bubble's clock).
func expiring(m nat44.Mapping, d time.Duration) nat44.Mapping {
	m.Expires = time.Now().Add(d)
	return m
}

type service struct {
	*nat44.NAT
	dp *nat44test.FakeDatapath
	ct *nat44test.FakeConntrack
}

// newService makes a service with fakes; cfg fields left zero get test
// defaults. It does not run it.
func newService(t *testing.T, cfg nat44.Config) *service {
	t.Helper()
	if cfg.WAN == "" {
		cfg.WAN = "wan0"
	}
	if cfg.LANs == nil {
		cfg.LANs = []string{"br-lan"}
	}
	dp, _ := cfg.Datapath.(*nat44test.FakeDatapath)
	if cfg.Datapath == nil {
		dp = nat44test.NewFakeDatapath()
		cfg.Datapath = dp
	}
	ct, _ := cfg.Conntrack.(*nat44test.FakeConntrack)
	if cfg.Conntrack == nil {
		ct = nat44test.NewFakeConntrack()
		cfg.Conntrack = ct
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	n, err := nat44.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &service{n, dp, ct}
}

// run starts s and waits until its table is installed. The returned stop
// (also registered as a cleanup) cancels Run and waits for it.
func (s *service) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run = %v before the table was installed", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func start(t *testing.T, cfg nat44.Config) *service {
	t.Helper()
	s := newService(t, cfg)
	s.run(t)
	return s
}

// forwards is what the datapath must hold for the mappings ms.
func forwards(ms ...nat44.Mapping) map[nat44.Key]netip.AddrPort {
	out := map[nat44.Key]netip.AddrPort{}
	for _, m := range ms {
		out[m.Key()] = m.Internal
	}
	return out
}

// checkState compares the service's table and the datapath's forward map
// with want.
func (s *service) checkState(t *testing.T, want ...nat44.Mapping) {
	t.Helper()
	if want == nil {
		want = []nat44.Mapping{}
	}
	if diff := cmp.Diff(want, s.List(), netipComparers); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(forwards(want...), s.dp.Forwards(), netipComparers); diff != "" {
		t.Errorf("datapath forward map (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  nat44.Config
		want []string // every one in the error
	}{
		{"good", nat44.Config{WAN: "wan", LANs: []string{"lan"}}, nil},
		{"good with hold", nat44.Config{WAN: "wan", LANs: []string{"lan"}, UDPHold: 2 * time.Minute, Filtering: nat44.EndpointIndependent}, nil},
		{"empty", nat44.Config{}, []string{"no WAN", "no LAN"}},
		{"WAN is a LAN", nat44.Config{WAN: "eth0", LANs: []string{"lan", "eth0"}}, []string{"both WAN and LAN"}},
		{"everything wrong", nat44.Config{WAN: "x", LANs: []string{"x"}, Filtering: 7, UDPHold: time.Minute}, []string{"both WAN and LAN", "unknown filtering 7", "2 minutes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (tt.want == nil) {
				t.Fatalf("Validate = %v, want errors %q", err, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, does not say %q", err, w)
				}
			}
		})
	}
}

func TestAdd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{})
		if !s.dp.Installed() {
			t.Fatal("Run did not install the table")
		}
		m := expiring(mapping(nat44.TCP, 8080, hostA, nat44.OwnerUPnP), time.Hour)
		if err := s.Add(m); err != nil {
			t.Fatal(err)
		}
		s.checkState(t, m)
		if got, ok := s.dp.Lookup(nat44.TCP, 8080); !ok || got != hostA {
			t.Errorf("datapath Lookup(tcp, 8080) = %v, %v; want %v", got, ok, hostA)
		}
		if got, ok := s.Get(m.Key()); !ok || got != m {
			t.Errorf("Get = %+v, %v; want %+v", got, ok, m)
		}
		// A renewal by the same host changes nothing in the kernel.
		applies := s.dp.Applies()
		if err := s.Add(expiring(m, 2*time.Hour)); err != nil {
			t.Fatalf("renewal: %v", err)
		}
		if got := s.dp.Applies(); got != applies {
			t.Errorf("a renewal changed the kernel %d times", got-applies)
		}
		if got, _ := s.Get(m.Key()); !got.Expires.Equal(time.Now().Add(2 * time.Hour)) {
			t.Errorf("renewal left expiry at %v", got.Expires)
		}
	})
}

func TestAddBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newService(t, nat44.Config{})
		m := mapping(nat44.UDP, 3074, hostC, nat44.OwnerAdmin)
		if err := s.Add(m); err != nil {
			t.Fatal(err)
		}
		if s.dp.Installed() {
			t.Fatal("Add before Run touched the kernel")
		}
		s.run(t)
		s.checkState(t, m)
	})
}

func TestAddBatchAllOrNothing(t *testing.T) {
	existing := mapping(nat44.TCP, 80, hostA, nat44.OwnerUPnP)
	timed := mapping(nat44.UDP, 3074, hostC, nat44.OwnerPCP)
	tests := []struct {
		name          string
		batch         func() []nat44.Mapping // built in the bubble, for its clock
		wantErr       error
		wantConflicts uint64
	}{
		{
			name: "conflict in the middle",
			batch: func() []nat44.Mapping {
				return []nat44.Mapping{mapping(nat44.TCP, 81, hostB, nat44.OwnerUPnP), mapping(nat44.TCP, 80, hostB, nat44.OwnerUPnP), mapping(nat44.TCP, 82, hostB, nat44.OwnerUPnP)}
			},
			wantErr:       nat44.ErrConflict,
			wantConflicts: 1,
		},
		{
			name: "conflict within the batch",
			batch: func() []nat44.Mapping {
				return []nat44.Mapping{mapping(nat44.TCP, 81, hostA, nat44.OwnerUPnP), mapping(nat44.TCP, 81, hostB, nat44.OwnerUPnP)}
			},
			wantErr:       nat44.ErrConflict,
			wantConflicts: 1,
		},
		{
			name: "invalid in the middle",
			batch: func() []nat44.Mapping {
				return []nat44.Mapping{mapping(nat44.TCP, 81, hostB, nat44.OwnerUPnP), mapping(nat44.TCP, 0, hostB, nat44.OwnerUPnP), mapping(nat44.TCP, 82, hostB, nat44.OwnerUPnP)}
			},
			wantErr: nat44.ErrInvalid,
		},
		{
			name: "expired at the end",
			batch: func() []nat44.Mapping {
				return []nat44.Mapping{mapping(nat44.TCP, 81, hostB, nat44.OwnerUPnP), expiring(mapping(nat44.TCP, 82, hostB, nat44.OwnerUPnP), -time.Second)}
			},
			wantErr: nat44.ErrInvalid,
		},
		{
			name: "renewals are undone too",
			batch: func() []nat44.Mapping {
				renew := expiring(timed, 5*time.Hour)
				renew.Description = "renewed"
				permanent := existing
				permanent.Owner = nat44.OwnerAdmin
				return []nat44.Mapping{renew, permanent, mapping(nat44.TCP, 80, hostC, nat44.OwnerUPnP)}
			},
			wantErr:       nat44.ErrConflict,
			wantConflicts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := start(t, nat44.Config{})
				before := []nat44.Mapping{existing, expiring(timed, time.Hour)}
				if err := s.Add(before...); err != nil {
					t.Fatal(err)
				}
				applies := s.dp.Applies()
				if err := s.Add(tt.batch()...); !errors.Is(err, tt.wantErr) {
					t.Fatalf("Add = %v, want %v", err, tt.wantErr)
				}
				s.checkState(t, before...)
				if got := s.dp.Applies(); got != applies {
					t.Errorf("a refused batch changed the kernel %d times", got-applies)
				}
				if got := s.Status().Counters.Conflicts; got != tt.wantConflicts {
					t.Errorf("Conflicts = %d, want %d", got, tt.wantConflicts)
				}
				// The expiry heap was restored with the table: the hour-long
				// mapping still expires in an hour, not in five.
				time.Sleep(time.Hour)
				synctest.Wait()
				s.checkState(t, existing)
			})
		})
	}
}

func TestApplyFailureRollsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{})
		kept := mapping(nat44.TCP, 80, hostA, nat44.OwnerAdmin)
		if err := s.Add(kept); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("netlink: ENOBUFS")

		s.dp.FailNext(boom)
		if err := s.Add(mapping(nat44.TCP, 81, hostB, nat44.OwnerAdmin), mapping(nat44.UDP, 81, hostB, nat44.OwnerAdmin)); !errors.Is(err, boom) {
			t.Fatalf("Add with a failing datapath = %v, want %v", err, boom)
		}
		s.checkState(t, kept)

		s.dp.FailNext(boom)
		if err := s.Remove(kept.Key()); !errors.Is(err, boom) {
			t.Fatalf("Remove with a failing datapath = %v, want %v", err, boom)
		}
		s.checkState(t, kept)

		st := s.Status()
		if st.Counters.ApplyErrors != 2 || !st.Installed || st.LastError != "" {
			t.Errorf("Status = %+v; want 2 apply errors, installed, no last error", st)
		}
	})
}

func TestRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{})
		a := mapping(nat44.TCP, 80, hostA, nat44.OwnerAdmin)
		b := expiring(mapping(nat44.UDP, 80, hostB, nat44.OwnerUPnP), time.Hour)
		c := mapping(nat44.TCP, 443, hostA, nat44.OwnerAdmin)
		if err := s.Add(a, b, c); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove(a.Key(), nat44.Key{Proto: nat44.TCP, ExternalPort: 9}); !errors.Is(err, nat44.ErrNotFound) {
			t.Fatalf("Remove with a missing key = %v, want ErrNotFound", err)
		}
		s.checkState(t, a, c, b)
		if err := s.Remove(a.Key(), b.Key()); err != nil {
			t.Fatal(err)
		}
		s.checkState(t, c)
		// The removed timed mapping's expiry passes quietly.
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		s.checkState(t, c)
		if got := s.Status().Counters.Expired; got != 0 {
			t.Errorf("Expired = %d after removing the timed mapping", got)
		}
	})
}

func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{})
		short := expiring(mapping(nat44.TCP, 80, hostA, nat44.OwnerUPnP), 10*time.Minute)
		long := expiring(mapping(nat44.UDP, 80, hostB, nat44.OwnerPCP), 20*time.Minute)
		permanent := mapping(nat44.TCP, 443, hostA, nat44.OwnerAdmin)
		if err := s.Add(long, permanent); err != nil {
			t.Fatal(err)
		}
		// A later Add with an earlier expiry rearms the timer.
		if err := s.Add(short); err != nil {
			t.Fatal(err)
		}

		time.Sleep(10*time.Minute - time.Nanosecond)
		synctest.Wait()
		s.checkState(t, short, permanent, long)

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		s.checkState(t, permanent, long)

		// A renewal before the end moves the end.
		renewed := expiring(long, 30*time.Minute)
		if err := s.Add(renewed); err != nil {
			t.Fatal(err)
		}
		time.Sleep(29 * time.Minute)
		synctest.Wait()
		s.checkState(t, permanent, renewed)
		time.Sleep(time.Minute)
		synctest.Wait()
		s.checkState(t, permanent)

		if got := s.Status().Counters.Expired; got != 2 {
			t.Errorf("Expired = %d, want 2", got)
		}
		// Nothing else to expire: the permanent mapping stays for good.
		time.Sleep(1000 * time.Hour)
		synctest.Wait()
		s.checkState(t, permanent)
	})
}

func TestSetWAN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{})
		ms := []nat44.Mapping{mapping(nat44.TCP, 80, hostA, nat44.OwnerAdmin), expiring(mapping(nat44.UDP, 3074, hostC, nat44.OwnerUPnP), time.Hour)}
		if err := s.Add(ms...); err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{wanAddr, wanAddr2, {}, wanAddr} {
			if err := s.SetWAN(a); err != nil {
				t.Fatalf("SetWAN(%v): %v", a, err)
			}
			if got := s.dp.WANAddr(); got != a {
				t.Errorf("after SetWAN(%v) the datapath has %v", a, got)
			}
			if got := s.WAN(); got != a {
				t.Errorf("after SetWAN(%v) WAN() = %v", a, got)
			}
			s.checkState(t, ms...)
		}
		applies := s.dp.Applies()
		if err := s.SetWAN(wanAddr); err != nil {
			t.Fatal(err)
		}
		if got := s.dp.Applies(); got != applies {
			t.Errorf("SetWAN to the same address changed the kernel")
		}
	})
}

func TestSetStatic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{})
		dynamic80 := expiring(mapping(nat44.TCP, 80, hostA, nat44.OwnerUPnP), time.Hour)
		dynamic81 := expiring(mapping(nat44.TCP, 81, hostB, nat44.OwnerPCP), time.Hour)
		if err := s.Add(dynamic80, dynamic81); err != nil {
			t.Fatal(err)
		}

		// A static forward wins over the dynamic mapping on its port.
		static80 := mapping(nat44.TCP, 80, hostC, nat44.OwnerStatic)
		static90 := mapping(nat44.TCP, 90, hostA, nat44.OwnerStatic)
		if err := s.SetStatic([]nat44.Mapping{
			mapping(nat44.TCP, 80, hostC, ""),
			{Proto: nat44.TCP, ExternalPort: 90, Internal: hostA, Owner: nat44.OwnerAdmin, Expires: time.Now().Add(time.Minute)}, // made static and permanent
		}); err != nil {
			t.Fatal(err)
		}
		s.checkState(t, static80, dynamic81, static90)

		// Only static forwards are replaced.
		static91 := mapping(nat44.TCP, 91, hostB, nat44.OwnerStatic)
		if err := s.SetStatic([]nat44.Mapping{static91}); err != nil {
			t.Fatal(err)
		}
		s.checkState(t, dynamic81, static91)

		// A dynamic request for a static port is a conflict...
		if err := s.Add(expiring(mapping(nat44.TCP, 91, hostC, nat44.OwnerUPnP), time.Hour)); !errors.Is(err, nat44.ErrConflict) {
			t.Errorf("Add over a static forward = %v, want ErrConflict", err)
		}
		// ...unless it asks for what the forward does already; it must not
		// turn the static forward into one that expires.
		if err := s.Add(expiring(mapping(nat44.TCP, 91, hostB, nat44.OwnerUPnP), time.Hour)); err != nil {
			t.Errorf("Add of what a static forward does already = %v", err)
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		s.checkState(t, static91)

		// Refused: invalid, or a port given twice; the old set stays.
		for _, bad := range [][]nat44.Mapping{
			{mapping(nat44.TCP, 0, hostA, "")},
			{mapping(nat44.TCP, 1, hostA, ""), mapping(nat44.TCP, 1, hostB, "")},
		} {
			if err := s.SetStatic(bad); err == nil {
				t.Errorf("SetStatic(%v) = nil, want an error", bad)
			}
			s.checkState(t, static91)
		}
		if err := s.SetStatic(nil); err != nil {
			t.Fatal(err)
		}
		s.checkState(t)
	})
}

func TestPersistence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		first := newService(t, nat44.Config{StateDir: dir})
		stop := first.run(t)

		web := mapping(nat44.TCP, 80, hostA, nat44.OwnerAdmin)
		goneWhileDown := expiring(mapping(nat44.UDP, 3074, hostC, nat44.OwnerUPnP), time.Hour)
		lasting := expiring(mapping(nat44.UDP, 3075, hostC, nat44.OwnerPCP), 10*time.Hour)
		removed := mapping(nat44.TCP, 22, hostB, nat44.OwnerAdmin)
		displaced := mapping(nat44.TCP, 8080, hostB, nat44.OwnerUPnP)
		expired := expiring(mapping(nat44.TCP, 8081, hostB, nat44.OwnerNATPMP), time.Minute)
		if err := first.Add(web, goneWhileDown, lasting, removed, displaced, expired); err != nil {
			t.Fatal(err)
		}
		if err := first.Remove(removed.Key()); err != nil {
			t.Fatal(err)
		}
		if err := first.SetStatic([]nat44.Mapping{mapping(nat44.TCP, 8080, hostA, ""), mapping(nat44.TCP, 443, hostA, "")}); err != nil {
			t.Fatal(err)
		}
		renewedWeb := web
		renewedWeb.Description = "renewed"
		if err := first.Add(renewedWeb); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // expired goes while we run
		synctest.Wait()
		stop()
		if first.dp.Installed() {
			t.Error("the stopped service left its table in the kernel")
		}

		time.Sleep(2 * time.Hour) // goneWhileDown expires while nothing runs

		second := newService(t, nat44.Config{StateDir: dir})
		// Static forwards are not persisted: the config brings them back.
		want := []nat44.Mapping{renewedWeb, lasting}
		if diff := cmp.Diff(want, second.List(), netipComparers); diff != "" {
			t.Errorf("restored mappings (-want +got):\n%s", diff)
		}
		second.run(t)
		second.checkState(t, want...)
		// The restored mapping still expires on time.
		time.Sleep(lasting.Expires.Sub(time.Now()))
		synctest.Wait()
		second.checkState(t, renewedWeb)
	})
}

func TestJournalCompaction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		s := newService(t, nat44.Config{StateDir: dir})
		stop := s.run(t)
		keep := []nat44.Mapping{
			mapping(nat44.TCP, 80, hostA, nat44.OwnerAdmin),
			expiring(mapping(nat44.UDP, 80, hostB, nat44.OwnerUPnP), 100*time.Hour),
			mapping(nat44.UDP, 3074, hostC, nat44.OwnerPCP),
		}
		if err := s.Add(keep...); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "mappings.jsonl")
		maxLines := 0
		for i := range 600 {
			m := expiring(mapping(nat44.TCP, uint16(1000+i%500), hostB, nat44.OwnerUPnP), time.Hour)
			if err := s.Add(m); err != nil {
				t.Fatal(err)
			}
			if err := s.Remove(m.Key()); err != nil {
				t.Fatal(err)
			}
			if i%50 == 0 {
				maxLines = max(maxLines, countLines(t, path))
			}
		}
		// The journal is rewritten once it holds many more lines than
		// there are mappings: it does not grow with the history.
		if maxLines > 2*(len(keep)+1)+64+2 {
			t.Errorf("the journal reached %d lines for %d mappings", maxLines, len(keep))
		}
		if st := s.Status(); st.Counters.PersistError != 0 {
			t.Errorf("PersistError = %d", st.Counters.PersistError)
		}
		stop()
		if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("compaction left its temporary file: %v", err)
		}
		again := newService(t, nat44.Config{StateDir: dir})
		want := []nat44.Mapping{keep[0], keep[1], keep[2]}
		if diff := cmp.Diff(want, again.List(), netipComparers); diff != "" {
			t.Errorf("restored after compaction (-want +got):\n%s", diff)
		}
	})
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

func TestCorruptStateFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "mappings.jsonl")
		// A torn last line (a crash mid-write) is dropped; a bad line in the
		// middle is an error that names the file.
		good := `{"put":{"proto":"tcp","external_port":80,"internal":"192.168.1.10:80","owner":"web"}}` + "\n"
		if err := os.WriteFile(path, []byte(good+`{"put":{"proto":"tc`), 0o644); err != nil {
			t.Fatal(err)
		}
		s := newService(t, nat44.Config{StateDir: dir})
		if diff := cmp.Diff([]nat44.Mapping{mapping(nat44.TCP, 80, hostA, nat44.OwnerAdmin)}, s.List(), netipComparers); diff != "" {
			t.Errorf("restored (-want +got):\n%s", diff)
		}
		stop := s.run(t)
		stop()

		if err := os.WriteFile(path, []byte(`{"put":{"proto":"icmp"}}`+"\n"+good), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := nat44.New(nat44.Config{WAN: "wan0", LANs: []string{"lan"}, StateDir: dir, Datapath: nat44test.NewFakeDatapath(), Conntrack: nat44test.NewFakeConntrack()})
		if err == nil || !strings.Contains(err.Error(), path+":1") {
			t.Errorf("New with a bad state file = %v, want an error naming %s:1", err, path)
		}
	})
}

// watchedDatapath is a FakeDatapath that is also a DriftWatcher: each
// value sent on kick plays the kernel reporting a change by another
// program.
type watchedDatapath struct {
	*nat44test.FakeDatapath
	kick chan struct{}
}

func (w watchedDatapath) WatchDrift(ctx context.Context, changed func()) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
			changed()
		}
	}
}

func TestDrift(t *testing.T) {
	tests := []struct {
		name  string
		watch bool
	}{
		{"checked", false},
		{"watched", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake := nat44test.NewFakeDatapath()
				w := watchedDatapath{fake, make(chan struct{})}
				cfg := nat44.Config{Datapath: fake}
				if tt.watch {
					cfg.Datapath = w
				}
				s := newService(t, cfg)
				s.dp = fake
				s.run(t)
				m := mapping(nat44.TCP, 80, hostA, nat44.OwnerAdmin)
				if err := s.Add(m); err != nil {
					t.Fatal(err)
				}
				if err := s.SetWAN(wanAddr); err != nil {
					t.Fatal(err)
				}
				drift := func() {
					if tt.watch {
						w.kick <- struct{}{}
						synctest.Wait()
					} else {
						s.CheckDrift()
					}
				}

				// A report without a change rebuilds nothing.
				applies := fake.Applies()
				drift()
				if got := s.Status().Counters.Rebuilds; got != 0 || fake.Applies() != applies {
					t.Errorf("no drift, yet %d rebuilds and %d applies", got, fake.Applies()-applies)
				}

				for i := 1; i <= 2; i++ {
					fake.Tamper()
					drift()
					if !fake.Installed() {
						t.Fatal("the table was not rebuilt")
					}
					s.checkState(t, m)
					if got := fake.WANAddr(); got != wanAddr {
						t.Errorf("rebuilt with WAN address %v, want %v", got, wanAddr)
					}
					if drifted, _ := fake.Drifted(); drifted {
						t.Error("still drifted after the rebuild")
					}
					if got := s.Status().Counters.Rebuilds; got != uint64(i) {
						t.Errorf("Rebuilds = %d, want %d", got, i)
					}
				}
			})
		})
	}
}

func TestFilterEntries(t *testing.T) {
	const hold = 3 * time.Minute
	internal := netip.MustParseAddrPort("192.168.1.50:40000")
	remote := netip.MustParseAddrPort("192.0.2.99:3478")
	tests := []struct {
		mode    nat44.Filtering
		cone    map[uint16]netip.AddrPort
		remotes map[nat44.RemoteKey]netip.AddrPort
	}{
		{nat44.EndpointIndependent, map[uint16]netip.AddrPort{40000: internal}, map[nat44.RemoteKey]netip.AddrPort{}},
		{nat44.AddressDependent, map[uint16]netip.AddrPort{}, map[nat44.RemoteKey]netip.AddrPort{{Remote: remote.Addr(), ExternalPort: 40000}: internal}},
		{nat44.AddressAndPortDependent, map[uint16]netip.AddrPort{}, map[nat44.RemoteKey]netip.AddrPort{}},
	}
	empty := struct {
		Cone    map[uint16]netip.AddrPort
		Remotes map[nat44.RemoteKey]netip.AddrPort
	}{map[uint16]netip.AddrPort{}, map[nat44.RemoteKey]netip.AddrPort{}}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := start(t, nat44.Config{Filtering: tt.mode, UDPHold: hold})
				if err := s.SetWAN(wanAddr); err != nil {
					t.Fatal(err)
				}
				filters := func() any {
					return struct {
						Cone    map[uint16]netip.AddrPort
						Remotes map[nat44.RemoteKey]netip.AddrPort
					}{s.dp.Cone(), s.dp.Remotes()}
				}
				open := struct {
					Cone    map[uint16]netip.AddrPort
					Remotes map[nat44.RemoteKey]netip.AddrPort
				}{tt.cone, tt.remotes}
				emit := func(ev nat44.FlowEvent) {
					t.Helper()
					if err := s.ct.Emit(t.Context(), ev); err != nil {
						t.Fatal(err)
					}
					synctest.Wait()
				}
				flow := nat44.FlowEvent{Proto: nat44.UDP, Internal: internal, Remote: remote, External: netip.AddrPortFrom(wanAddr, 40000)}
				end := flow
				end.Destroy = true
				if tt.mode == nat44.AddressAndPortDependent {
					// Conntrack alone does this filtering: no one listens
					// to its events, which cost the kernel dearly.
					ctx, cancel := context.WithTimeout(t.Context(), time.Second)
					defer cancel()
					if err := s.ct.Emit(ctx, flow); err == nil {
						t.Fatal("a conntrack listener runs in the default filtering mode")
					}
					if diff := cmp.Diff(open, filters(), netipComparers); diff != "" {
						t.Fatalf("(-want +got):\n%s", diff)
					}
					return
				}

				emit(flow)
				if diff := cmp.Diff(open, filters(), netipComparers); diff != "" {
					t.Fatalf("after the first packet out (-want +got):\n%s", diff)
				}
				emit(end)
				time.Sleep(hold - time.Nanosecond)
				synctest.Wait()
				if diff := cmp.Diff(open, filters(), netipComparers); diff != "" {
					t.Errorf("during the hold (-want +got):\n%s", diff)
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if diff := cmp.Diff(empty, filters(), netipComparers); diff != "" {
					t.Errorf("after the hold (-want +got):\n%s", diff)
				}

				// A new WAN address drops the filters of the old one.
				emit(flow)
				if err := s.SetWAN(wanAddr2); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(empty, filters(), netipComparers); diff != "" {
					t.Errorf("after the WAN address changed (-want +got):\n%s", diff)
				}
				// Flows of another address, and TCP, open nothing.
				emit(flow)
				tcp := flow
				tcp.Proto, tcp.External = nat44.TCP, netip.AddrPortFrom(wanAddr2, 40000)
				emit(tcp)
				if diff := cmp.Diff(empty, filters(), netipComparers); diff != "" {
					t.Errorf("after ignored events (-want +got):\n%s", diff)
				}
				if got := s.Status().Counters.FlowEvents; got != 5 {
					t.Errorf("FlowEvents = %d, want 5", got)
				}
			})
		})
	}
}

func TestSetFiltering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{Filtering: nat44.EndpointIndependent})
		if err := s.SetWAN(wanAddr); err != nil {
			t.Fatal(err)
		}
		internal := netip.MustParseAddrPort("192.168.1.50:40000")
		if err := s.ct.Emit(t.Context(), nat44.FlowEvent{Proto: nat44.UDP, Internal: internal, Remote: netip.MustParseAddrPort("192.0.2.99:3478"), External: netip.AddrPortFrom(wanAddr, 40000)}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if len(s.dp.Cone()) != 1 {
			t.Fatalf("cone = %v, want one entry", s.dp.Cone())
		}
		if err := s.SetFiltering(nat44.AddressDependent); err != nil {
			t.Fatal(err)
		}
		if got := s.dp.Filtering(); got != nat44.AddressDependent {
			t.Errorf("datapath filtering = %v", got)
		}
		if len(s.dp.Cone()) != 0 {
			t.Errorf("the cone entries outlived endpoint-independent filtering: %v", s.dp.Cone())
		}
		if err := s.SetFiltering(9); err == nil {
			t.Error("SetFiltering(9) = nil")
		}
		if got := s.Status().Filtering; got != nat44.AddressDependent {
			t.Errorf("Status().Filtering = %v", got)
		}
	})
}

func TestSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{})
		if err := s.SetWAN(wanAddr); err != nil {
			t.Fatal(err)
		}
		in := nat44.Session{Proto: nat44.TCP, Inbound: true, Internal: hostA, External: netip.AddrPortFrom(wanAddr, 80), Remote: netip.MustParseAddrPort("192.0.2.1:50000"), State: "established", Timeout: time.Hour}
		old := in
		old.External = netip.AddrPortFrom(wanAddr2, 80)
		s.ct.SetSessions([]nat44.Session{in, old})
		got, err := s.Sessions()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]nat44.Session{in}, got, netipComparers); diff != "" {
			t.Errorf("Sessions (-want +got):\n%s", diff)
		}
	})
}

func TestRunFailsWhenTheTableCannotBeInstalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newService(t, nat44.Config{})
		boom := fmt.Errorf("nat44test: %w", errors.ErrUnsupported)
		s.dp.FailNext(boom)
		if err := s.Run(t.Context()); !errors.Is(err, boom) {
			t.Errorf("Run = %v, want %v", err, boom)
		}
		select {
		case <-s.Ready():
			t.Error("Ready closed though nothing was installed")
		default:
		}
	})
}

// TestFlowListenerFollowsMode: the conntrack listener runs only in the modes
// that need it; when it (re)starts, the flows alive then open their filter
// entries at once (a resync), so a restart of the daemon or a listener
// that fell behind loses nothing.
func TestFlowListenerFollowsMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		internal := netip.MustParseAddrPort("192.168.1.10:40000")
		live := nat44.FlowEvent{Proto: nat44.UDP, Internal: internal, Remote: netip.MustParseAddrPort("198.51.100.10:3478"), External: netip.AddrPortFrom(wanAddr, 40000)}
		s := newService(t, nat44.Config{Filtering: nat44.EndpointIndependent})
		s.ct.SetFlows([]nat44.FlowEvent{live})
		s.run(t)
		if err := s.SetWAN(wanAddr); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// The default mode: the listener stops.
		if err := s.SetFiltering(nat44.AddressAndPortDependent); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		if err := s.ct.Emit(ctx, live); err == nil {
			t.Fatal("the listener still runs in the default mode")
		}
		cancel()
		// Full cone again: the listener starts, and resyncs from the dump.
		if err := s.SetFiltering(nat44.EndpointIndependent); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, want := s.dp.Cone(), map[uint16]netip.AddrPort{40000: internal}; !maps.Equal(got, want) {
			t.Fatalf("after the listener restarted: cone %v, want %v from the live flows", got, want)
		}
		// Events flow again.
		other := live
		other.Internal = netip.MustParseAddrPort("192.168.1.11:41000")
		other.External = netip.AddrPortFrom(wanAddr, 41000)
		if err := s.ct.Emit(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, ok := s.dp.Cone()[41000]; !ok {
			t.Fatalf("an event after the restart did not open its entry: %v", s.dp.Cone())
		}
	})
}
