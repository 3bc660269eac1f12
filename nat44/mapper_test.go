package nat44_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gateway/nat44"
)

var (
	lanA = netip.MustParseAddr("192.168.1.10")
	lanB = netip.MustParseAddr("192.168.1.11")
)

func req(owner nat44.Owner, client netip.Addr, p nat44.Proto, ext uint16, internal string) nat44.Request {
	return nat44.Request{Owner: owner, Client: client, Proto: p, ExternalPort: ext, Internal: netip.MustParseAddrPort(internal), Lifetime: time.Hour}
}

// startWAN starts a service with a WAN address, as protocol requests need.
func startWAN(t *testing.T, cfg nat44.Config) *service {
	t.Helper()
	s := start(t, cfg)
	if err := s.SetWAN(wanAddr); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMapPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startWAN(t, nat44.Config{Reserved: []nat44.Key{{Proto: nat44.UDP, ExternalPort: 5001}}})
		if err := s.SetStatic([]nat44.Mapping{{Proto: nat44.UDP, ExternalPort: 5000, Internal: netip.MustParseAddrPort("192.168.1.99:5000")}}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name     string
			r        nat44.Request
			wantPort uint16
			wantErr  error
		}{
			{"free suggested port", req(nat44.OwnerNATPMP, lanA, nat44.UDP, 6000, "192.168.1.10:6000"), 6000, nil},
			{"taken: nearest above on a tie", req(nat44.OwnerNATPMP, lanB, nat44.UDP, 6000, "192.168.1.11:6000"), 6001, nil},
			{"taken: nearest below when closer", req(nat44.OwnerUPnP, lanB, nat44.UDP, 6001, "192.168.1.11:7000"), 6002, nil},
			{"static skipped", req(nat44.OwnerPCP, lanB, nat44.UDP, 5000, "192.168.1.11:5000"), 4999, nil},
			{"reserved skipped", req(nat44.OwnerPCP, lanB, nat44.UDP, 5001, "192.168.1.11:5001"), 5002, nil},
			{"any port: the internal port when free", req(nat44.OwnerPCP, lanA, nat44.TCP, 0, "192.168.1.10:41000"), 41000, nil},
			{"not allowed: nearest allowed", req(nat44.OwnerUPnP, lanA, nat44.TCP, 80, "192.168.1.10:80"), 1024, nil},
			{"exact taken", func() nat44.Request {
				r := req(nat44.OwnerUPnP, lanB, nat44.UDP, 6000, "192.168.1.11:6100")
				r.Exact = true
				return r
			}(), 0, nat44.ErrConflict},
			{"exact not allowed", func() nat44.Request {
				r := req(nat44.OwnerUPnP, lanB, nat44.TCP, 443, "192.168.1.11:443")
				r.Exact = true
				return r
			}(), 0, nat44.ErrNotAllowed},
			{"exact reserved", func() nat44.Request {
				r := req(nat44.OwnerUPnP, lanB, nat44.UDP, 5001, "192.168.1.11:5001")
				r.Exact = true
				return r
			}(), 0, nat44.ErrNotAllowed},
			{"admin below 1024", req(nat44.OwnerAdmin, netip.Addr{}, nat44.TCP, 80, "192.168.1.10:80"), 80, nil},
			{"the router's DHCP client port", func() nat44.Request {
				r := req(nat44.OwnerAdmin, netip.Addr{}, nat44.UDP, 68, "192.168.1.10:68")
				r.Exact = true
				return r
			}(), 0, nat44.ErrNotAllowed},
			{"secure mode", req(nat44.OwnerUPnP, lanB, nat44.TCP, 9000, "192.168.1.10:9000"), 0, nat44.ErrNotAllowed},
			{"invalid internal", req(nat44.OwnerUPnP, lanB, nat44.TCP, 9000, "0.0.0.0:9000"), 0, nat44.ErrInvalid},
		}
		for _, tt := range tests {
			m, err := s.Map(tt.r)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: Map = %v, want %v", tt.name, err, tt.wantErr)
				continue
			}
			if err == nil && m.ExternalPort != tt.wantPort {
				t.Errorf("%s: port %d, want %d", tt.name, m.ExternalPort, tt.wantPort)
			}
			if err == nil {
				if got, ok := s.dp.Lookup(m.Proto, m.ExternalPort); !ok || got != m.Internal {
					t.Errorf("%s: kernel has %v, %v; want %v", tt.name, got, ok, m.Internal)
				}
			}
		}
	})
}

func TestMapNoWAN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{})
		if _, err := s.Map(req(nat44.OwnerNATPMP, lanA, nat44.UDP, 6000, "192.168.1.10:6000")); !errors.Is(err, nat44.ErrNoWAN) {
			t.Errorf("Map without a WAN address = %v, want ErrNoWAN", err)
		}
	})
}

func TestMapOwnership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startWAN(t, nat44.Config{})
		static := nat44.Mapping{Proto: nat44.TCP, ExternalPort: 8080, Internal: netip.MustParseAddrPort("192.168.1.10:80"), Description: "web"}
		if err := s.SetStatic([]nat44.Mapping{static}); err != nil {
			t.Fatal(err)
		}
		// The static forward's own host asking for it gets it as it
		// stands: permanent, owner static.
		r := req(nat44.OwnerUPnP, lanA, nat44.TCP, 8080, "192.168.1.10:80")
		r.Exact = true
		m, err := s.Map(r)
		if err != nil || m.Owner != nat44.OwnerStatic || !m.Permanent() {
			t.Fatalf("Map of the static forward's own target = %+v, %v; want it unchanged", m, err)
		}
		if got, _ := s.Get(static.Key()); got.Owner != nat44.OwnerStatic || !got.Permanent() {
			t.Fatalf("a protocol request rewrote the static forward: %+v", got)
		}
		for _, rel := range []nat44.Release{{Owner: nat44.OwnerUPnP, Client: lanA}, {Owner: nat44.OwnerAdmin}} {
			if err := s.Unmap(rel, static.Key()); !errors.Is(err, nat44.ErrNotOwner) {
				t.Errorf("Unmap of a static forward by %s = %v, want ErrNotOwner", rel.Owner, err)
			}
		}

		a, err := s.Map(req(nat44.OwnerUPnP, lanA, nat44.UDP, 3074, "192.168.1.10:3074"))
		if err != nil {
			t.Fatal(err)
		}
		// Another host can neither delete nor take over A's mapping.
		if err := s.Unmap(nat44.Release{Owner: nat44.OwnerUPnP, Client: lanB}, a.Key()); !errors.Is(err, nat44.ErrNotOwner) {
			t.Errorf("Unmap by another host = %v, want ErrNotOwner", err)
		}
		b, err := s.Map(req(nat44.OwnerUPnP, lanB, nat44.UDP, 3074, "192.168.1.11:3074"))
		if err != nil || b.ExternalPort == 3074 {
			t.Errorf("Map of a port another host holds = %+v, %v; want another port", b, err)
		}
		// Its own host may shorten it, then delete it.
		r = req(nat44.OwnerUPnP, lanA, nat44.UDP, 3074, "192.168.1.10:3074")
		r.Lifetime = 10 * time.Minute
		if m, err := s.Map(r); err != nil || m.ExternalPort != 3074 || !m.Expires.Equal(time.Now().Add(10*time.Minute)) {
			t.Errorf("renewal = %+v, %v", m, err)
		}
		if err := s.Unmap(nat44.Release{Owner: nat44.OwnerNATPMP, Client: lanA}, a.Key()); err != nil {
			t.Errorf("Unmap by its own host = %v", err)
		}
		if err := s.Unmap(nat44.Release{Owner: nat44.OwnerAdmin}, a.Key()); !errors.Is(err, nat44.ErrNotFound) {
			t.Errorf("Unmap of a missing mapping = %v, want ErrNotFound", err)
		}
		// The administrator may delete a host's mapping.
		if err := s.Unmap(nat44.Release{Owner: nat44.OwnerAdmin}, b.Key()); err != nil {
			t.Errorf("admin Unmap = %v", err)
		}
	})
}

func TestMapPCPNonceAndByInternal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startWAN(t, nat44.Config{})
		r := req(nat44.OwnerPCP, lanA, nat44.UDP, 0, "192.168.1.10:41641")
		r.ByInternal, r.Nonce = true, nat44.Nonce{1, 2, 3}
		m, err := s.Map(r)
		if err != nil {
			t.Fatal(err)
		}
		// A renewal for the same internal endpoint with another suggested
		// port renews the same mapping.
		r.ExternalPort = 50000
		if again, err := s.Map(r); err != nil || again.ExternalPort != m.ExternalPort {
			t.Errorf("renewal by internal endpoint = %+v, %v; want port %d", again, err, m.ExternalPort)
		}
		r.Nonce = nat44.Nonce{9}
		if _, err := s.Map(r); !errors.Is(err, nat44.ErrNotOwner) {
			t.Errorf("renewal with a wrong nonce = %v, want ErrNotOwner", err)
		}
		if err := s.Unmap(nat44.Release{Owner: nat44.OwnerPCP, Client: lanA, Nonce: nat44.Nonce{9}, CheckNonce: true}, m.Key()); !errors.Is(err, nat44.ErrNotOwner) {
			t.Errorf("delete with a wrong nonce = %v, want ErrNotOwner", err)
		}
		if err := s.Unmap(nat44.Release{Owner: nat44.OwnerPCP, Client: lanA, Nonce: nat44.Nonce{1, 2, 3}, CheckNonce: true}, m.Key()); err != nil {
			t.Errorf("delete with the nonce = %v", err)
		}
	})
}

func TestMapLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startWAN(t, nat44.Config{Policy: nat44.Policy{HostLimit: 3, TableLimit: 5}})
		for i := range 3 {
			if _, err := s.Map(req(nat44.OwnerUPnP, lanA, nat44.TCP, uint16(2000+i), "192.168.1.10:2000")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Map(req(nat44.OwnerUPnP, lanA, nat44.TCP, 3000, "192.168.1.10:3000")); !errors.Is(err, nat44.ErrHostLimit) {
			t.Errorf("4th mapping of one host = %v, want ErrHostLimit", err)
		}
		// A renewal is not a new mapping.
		if _, err := s.Map(req(nat44.OwnerUPnP, lanA, nat44.TCP, 2000, "192.168.1.10:2000")); err != nil {
			t.Errorf("renewal at the limit = %v", err)
		}
		for i := range 2 {
			if _, err := s.Map(req(nat44.OwnerUPnP, lanB, nat44.TCP, uint16(4000+i), "192.168.1.11:4000")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Map(req(nat44.OwnerAdmin, netip.Addr{}, nat44.TCP, 5000, "192.168.1.12:5000")); !errors.Is(err, nat44.ErrTableFull) {
			t.Errorf("mapping past the table limit = %v, want ErrTableFull", err)
		}
		if got := s.Status().Counters.Refused; got != 2 {
			t.Errorf("Refused = %d, want 2", got)
		}
		if got := len(s.HostMappings(lanA)); got != 3 {
			t.Errorf("HostMappings(A) = %d mappings, want 3", got)
		}
		ms, err := s.UnmapHost(nat44.Release{Owner: nat44.OwnerUPnP, Client: lanA}, lanA, 0)
		if err != nil || len(ms) != 3 || len(s.HostMappings(lanA)) != 0 {
			t.Errorf("UnmapHost = %d, %v; left %d", len(ms), err, len(s.HostMappings(lanA)))
		}
	})
}

func TestMapRulesAndLAN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rules := []nat44.Rule{}
		for _, s := range []string{"deny 6000-6999 192.168.1.10 1-65535", "allow 1024-65535 192.168.1.0/24 1024-65535"} {
			r, err := nat44.ParseRule(s)
			if err != nil {
				t.Fatal(err)
			}
			rules = append(rules, r)
		}
		s := startWAN(t, nat44.Config{Policy: nat44.Policy{Rules: rules, AllowThirdParty: true}})
		s.SetLANPrefixes([]netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")})
		// First match wins: A's 6000-6999 are denied, so it gets 7000.
		if m, err := s.Map(req(nat44.OwnerUPnP, lanA, nat44.TCP, 6500, "192.168.1.10:6500")); err != nil || m.ExternalPort != 7000 {
			t.Errorf("denied range: %+v, %v; want port 7000", m, err)
		}
		if m, err := s.Map(req(nat44.OwnerUPnP, lanA, nat44.TCP, 6500, "192.168.1.11:6500")); err != nil || m.ExternalPort != 6500 {
			t.Errorf("third party (secure mode off) for B: %+v, %v", m, err)
		}
		if _, err := s.Map(req(nat44.OwnerUPnP, lanA, nat44.TCP, 6500, "192.168.1.11:80")); !errors.Is(err, nat44.ErrNoPort) {
			t.Errorf("internal port no rule allows = %v, want ErrNoPort", err)
		}
		if _, err := s.Map(req(nat44.OwnerUPnP, lanA, nat44.TCP, 6500, "10.0.0.5:6500")); !errors.Is(err, nat44.ErrNotAllowed) {
			t.Errorf("internal host off the LAN = %v, want ErrNotAllowed", err)
		}
	})
}

func TestMapLifetimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startWAN(t, nat44.Config{})
		for _, tt := range []struct {
			owner nat44.Owner
			asked time.Duration
			want  time.Duration // 0: permanent
		}{
			{nat44.OwnerNATPMP, time.Second, nat44.DefaultMinLifetime},
			{nat44.OwnerPCP, 30 * 24 * time.Hour, nat44.DefaultMaxLifetime},
			{nat44.OwnerUPnP, 0, nat44.DefaultMaxLifetime},
			{nat44.OwnerAdmin, 0, 0},
		} {
			r := req(tt.owner, lanA, nat44.UDP, 0, "192.168.1.10:9999")
			r.Lifetime = tt.asked
			m, err := s.Map(r)
			if err != nil {
				t.Fatal(err)
			}
			if m.Lifetime != tt.want || (tt.want == 0) != m.Permanent() {
				t.Errorf("%s asking %v got %v (permanent %v), want %v", tt.owner, tt.asked, m.Lifetime, m.Permanent(), tt.want)
			}
			if m.Permanent() {
				s.Unmap(nat44.Release{Owner: nat44.OwnerAdmin}, m.Key())
				continue
			}
			// It leaves the kernel when its lifetime is over, not later.
			time.Sleep(tt.want - time.Second)
			synctest.Wait()
			if _, ok := s.dp.Lookup(m.Proto, m.ExternalPort); !ok {
				t.Errorf("%s: mapping gone a second early", tt.owner)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if _, ok := s.dp.Lookup(m.Proto, m.ExternalPort); ok {
				t.Errorf("%s: mapping still in the kernel after its lifetime", tt.owner)
			}
		}
	})
}

func TestEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		s := newService(t, nat44.Config{StateDir: dir})
		stop := s.run(t)
		events, cancel := s.Subscribe()
		defer cancel()
		s.SetWAN(wanAddr)
		if e := <-events; e.Kind != nat44.WANChanged || e.WAN != wanAddr {
			t.Errorf("event = %+v, want WANChanged", e)
		}
		time.Sleep(time.Hour)
		if got := s.Epoch(); got != time.Hour {
			t.Errorf("Epoch = %v, want 1h", got)
		}
		stop()
		time.Sleep(time.Minute) // down for a minute: the state is kept, so the epoch goes on
		s2 := newService(t, nat44.Config{StateDir: dir})
		s2.run(t)
		s2.SetWAN(wanAddr)
		if got := s2.Epoch(); got != time.Hour+time.Minute {
			t.Errorf("Epoch after a restart = %v, want 1h1m", got)
		}
		ev2, cancel2 := s2.Subscribe()
		defer cancel2()
		s2.SetWAN(wanAddr2) // a new external address: a new epoch
		if got := s2.Epoch(); got != 0 {
			t.Errorf("Epoch after a WAN change = %v, want 0", got)
		}
		if e := <-ev2; e.Kind != nat44.EpochReset {
			t.Errorf("first event after the WAN change = %+v, want EpochReset", e)
		}
		if e := <-ev2; e.Kind != nat44.WANChanged || e.WAN != wanAddr2 {
			t.Errorf("second event = %+v, want WANChanged", e)
		}
		if _, open := <-events; open {
			t.Error("the stopped service's feed is still open")
		}
		// State lost: a new epoch.
		os.Remove(filepath.Join(dir, "mappings.jsonl"))
		s3 := newService(t, nat44.Config{StateDir: t.TempDir()})
		if got := s3.Epoch(); got != 0 {
			t.Errorf("Epoch of a new state = %v, want 0", got)
		}
	})
}

func TestFeedOrderAndOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := startWAN(t, nat44.Config{})
		events, cancel := s.Subscribe()
		defer cancel()
		m, _ := s.Map(req(nat44.OwnerUPnP, lanA, nat44.TCP, 7000, "192.168.1.10:7000"))
		s.Map(req(nat44.OwnerUPnP, lanA, nat44.TCP, 7000, "192.168.1.10:7000"))
		s.Unmap(nat44.Release{Owner: nat44.OwnerUPnP, Client: lanA}, m.Key())
		for _, want := range []nat44.EventKind{nat44.MappingAdded, nat44.MappingRenewed, nat44.MappingRemoved} {
			if e := <-events; e.Kind != want || e.Mapping.Key() != m.Key() {
				t.Errorf("event %+v, want kind %d of %v", e, want, m.Key())
			}
		}
		// A subscriber that does not read loses events past its queue,
		// and learns how many.
		slow, cancelSlow := s.Subscribe()
		defer cancelSlow()
		const n = 5000
		for i := range n {
			s.SetWAN(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))
		}
		// Each change is an EpochReset and a WANChanged.
		got, lost := 0, 0
		for got+lost < 2*n {
			e := <-slow
			if e.Kind == nat44.Overflow {
				lost += e.Lost
			} else {
				got++
			}
		}
		if lost == 0 || got+lost != 2*n {
			t.Errorf("slow subscriber: %d events, %d lost; want %d in all with some lost", got, lost, 2*n)
		}
	})
}

// TestHeadroom: renewals inside the headroom write nothing; after a crash
// (no clean stop), every mapping is back with at least the expiry its last
// reply promised.
func TestHeadroom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		s := newService(t, nat44.Config{StateDir: dir, Headroom: 30 * time.Minute})
		s.SetWAN(wanAddr)
		r := req(nat44.OwnerPCP, lanA, nat44.UDP, 3074, "192.168.1.10:3074")
		r.Lifetime = 4 * time.Minute
		var last nat44.Mapping
		for range 30 { // a console renewing every 2 minutes for an hour
			m, err := s.Map(r)
			if err != nil {
				t.Fatal(err)
			}
			last = m
			time.Sleep(2 * time.Minute)
		}
		st := s.Status().Counters
		// One write at first, then one each time the promise passes the
		// record on disk: every 13th renewal or so.
		if st.Writes > 4 || st.WritesSaved < 25 {
			t.Errorf("30 renewals: %d records written, %d saved; want at most 4 written", st.Writes, st.WritesSaved)
		}
		// Crash: the service is dropped without a clean stop.
		b, _ := os.ReadFile(filepath.Join(dir, "mappings.jsonl"))
		if !strings.Contains(string(b), `"put"`) {
			t.Fatalf("journal has no mapping:\n%s", b)
		}
		s2 := newService(t, nat44.Config{StateDir: dir})
		got, ok := s2.Get(last.Key())
		if !ok || got.Expires.Before(last.Expires) {
			t.Errorf("after a crash: %+v, %v; want it until at least %v", got, ok, last.Expires)
		}
	})
}

func TestPinholes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		s := newService(t, nat44.Config{StateDir: dir, Policy: nat44.Policy{HostLimit: 2}})
		stop := s.run(t)
		s.SetLANPrefixes([]netip.Prefix{netip.MustParsePrefix("2001:db8:1:1::/64")})
		h := netip.MustParseAddr("2001:db8:1:1::10")
		other := netip.MustParseAddr("2001:db8:1:1::11")
		pr := func(client netip.Addr, port uint16) nat44.PinholeRequest {
			return nat44.PinholeRequest{Owner: nat44.OwnerUPnP, Client: client, Proto: nat44.TCP, Internal: netip.AddrPortFrom(h, port), Lifetime: time.Hour}
		}
		p, err := s.OpenPinhole(pr(h, 22))
		if err != nil || p.ID == 0 {
			t.Fatalf("OpenPinhole = %+v, %v", p, err)
		}
		if n, err := s.PinholePackets(p.ID); err != nil || n != 0 {
			t.Errorf("PinholePackets of a new pinhole = %d, %v", n, err)
		}
		s.dp.CountPinhole(p.Key(), 3)
		if n, err := s.PinholePackets(p.ID); err != nil || n != 3 {
			t.Errorf("PinholePackets = %d, %v; want 3", n, err)
		}
		if _, err := s.PinholePackets(999); !errors.Is(err, nat44.ErrNotFound) {
			t.Errorf("PinholePackets of no pinhole = %v, want ErrNotFound", err)
		}
		if _, err := s.OpenPinhole(pr(other, 23)); !errors.Is(err, nat44.ErrNotAllowed) {
			t.Errorf("pinhole for another host = %v, want ErrNotAllowed", err)
		}
		if _, err := s.OpenPinhole(pr(h, 23)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.OpenPinhole(pr(h, 24)); !errors.Is(err, nat44.ErrHostLimit) {
			t.Errorf("third pinhole = %v, want ErrHostLimit", err)
		}
		bad := pr(h, 25)
		bad.Internal = netip.MustParseAddrPort("[2001:db8:9::1]:25")
		bad.Client = bad.Internal.Addr()
		if _, err := s.OpenPinhole(bad); !errors.Is(err, nat44.ErrNotAllowed) {
			t.Errorf("pinhole off the LAN = %v, want ErrNotAllowed", err)
		}
		if err := s.ClosePinhole(nat44.Release{Owner: nat44.OwnerUPnP, Client: other}, p.Key()); !errors.Is(err, nat44.ErrNotOwner) {
			t.Errorf("ClosePinhole by another host = %v, want ErrNotOwner", err)
		}
		stop()
		s2 := newService(t, nat44.Config{StateDir: dir})
		s2.run(t)
		if got, ok := s2.Pinhole(p.ID); !ok || got.Key() != p.Key() {
			t.Errorf("after a restart pinhole %d = %+v, %v", p.ID, got, ok)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := s2.Pinholes(); len(got) != 0 {
			t.Errorf("pinholes after their lifetime: %+v", got)
		}
		if got := s2.dp.Pinholes(); len(got) != 0 {
			t.Errorf("kernel pinholes after their lifetime: %+v", got)
		}
		// A pinhole opened in a running service leaves on time too.
		short := pr(h, 30)
		short.Owner, short.Lifetime = nat44.OwnerAdmin, 5*time.Second
		if _, err := s2.OpenPinhole(short); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := s2.dp.Pinholes(); len(got) != 0 {
			t.Errorf("kernel pinholes 5 s after a 5 s pinhole: %+v", got)
		}
	})
}

// TestHeadroomHomeLoad: a torrent client re-adding 4 UPnP mappings every
// 10 minutes and a console renewing PCP every 2 minutes cost the state
// directory a few fsyncs an hour, not one per request: renewals inside
// the headroom write nothing, and a write that happens tops up the others.
func TestHeadroomHomeLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newService(t, nat44.Config{StateDir: t.TempDir()})
		s.run(t)
		s.SetWAN(wanAddr)
		torrent := func() {
			for i := range 4 {
				r := req(nat44.OwnerUPnP, lanA, nat44.TCP, uint16(6881+i), "192.168.1.10:6881")
				if _, err := s.Map(r); err != nil {
					t.Fatal(err)
				}
			}
		}
		console := func() {
			r := req(nat44.OwnerPCP, lanB, nat44.UDP, 3074, "192.168.1.11:3074")
			r.ByInternal, r.Lifetime = true, 240*time.Second
			if _, err := s.Map(r); err != nil {
				t.Fatal(err)
			}
		}
		hour := func() uint64 {
			before := s.Status().Counters.Syncs
			for minute := 0; minute < 60; minute += 2 {
				if minute%10 == 0 {
					torrent()
				}
				console()
				time.Sleep(2 * time.Minute)
			}
			return s.Status().Counters.Syncs - before
		}
		first := hour()
		for h := range 3 {
			if got := hour(); got > 3 {
				t.Errorf("hour %d: %d fsyncs, want at most 3 (first hour: %d)", h+2, got, first)
			}
		}
		c := s.Status().Counters
		t.Logf("first hour %d fsyncs; %d records written, %d renewals saved a write", first, c.Writes, c.WritesSaved)
	})
}

// TestNAT66Pinholes: with NAT66 on, a ULA host's pinhole holds its port on
// the one NAT66 address (the kernel DNATs it there), a second ULA host is
// refused that port, and the address it is reached on is the NAT66 one.
func TestNAT66Pinholes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := start(t, nat44.Config{})
		ula := netip.MustParsePrefix("fd00:1:2:3::/64")
		s.SetLANPrefixes([]netip.Prefix{ula, netip.MustParsePrefix("2001:db8:1:1::/64")})
		a, b := netip.MustParseAddr("fd00:1:2:3::a"), netip.MustParseAddr("fd00:1:2:3::b")
		global := netip.MustParseAddr("2001:db8:1:1::a")
		teredo := netip.MustParseAddr("2001:0:c633:6401:0:fbff:9bfe:fefd")
		pr := func(h netip.Addr, proto nat44.Proto, port uint16) nat44.PinholeRequest {
			return nat44.PinholeRequest{Owner: nat44.OwnerPCP, Client: h, Proto: proto, Internal: netip.AddrPortFrom(h, port), Lifetime: time.Hour}
		}

		// Before NAT66: a ULA host is reached on its own address (that
		// is, not at all from outside), and nothing is DNATed.
		if got := s.ExternalIPv6(a); got != a {
			t.Errorf("ExternalIPv6(%v) without NAT66 = %v, want the host", a, got)
		}
		if _, err := s.OpenPinhole(pr(a, nat44.TCP, 8080)); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.dp.LookupNAT66(nat44.TCP, 8080); ok {
			t.Errorf("DNAT on the NAT66 address before there is one")
		}

		if err := s.SetNAT66([]string{"teredo"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetNAT66Address(netip.MustParseAddr("fd00::1")); !errors.Is(err, nat44.ErrInvalid) {
			t.Errorf("SetNAT66Address(a ULA) = %v, want ErrInvalid", err)
		}
		if err := s.SetNAT66Address(teredo); err != nil {
			t.Fatal(err)
		}
		if got := s.Status().NAT66Addr; got != teredo {
			t.Errorf("Status().NAT66Addr = %v, want %v", got, teredo)
		}
		if got := s.dp.NAT66Address(); got != teredo {
			t.Errorf("kernel NAT66 address %v, want %v", got, teredo)
		}
		// The pinhole opened before the address follows it.
		if got, ok := s.dp.LookupNAT66(nat44.TCP, 8080); !ok || got != netip.AddrPortFrom(a, 8080) {
			t.Errorf("NAT66 tcp/8080 leads to %v, %v; want [%v]:8080", got, ok, a)
		}
		for _, tt := range []struct {
			host, want netip.Addr
		}{{a, teredo}, {b, teredo}, {global, global}} {
			if got := s.ExternalIPv6(tt.host); got != tt.want {
				t.Errorf("ExternalIPv6(%v) = %v, want %v", tt.host, got, tt.want)
			}
		}

		tests := []struct {
			name    string
			r       nat44.PinholeRequest
			wantErr error
		}{
			{"another ULA host on a taken port", pr(b, nat44.TCP, 8080), nat44.ErrConflict},
			{"the same port, the other protocol", pr(b, nat44.UDP, 8080), nil},
			{"the holder renews", pr(a, nat44.TCP, 8080), nil},
			{"the holder, for one remote host", func() nat44.PinholeRequest {
				r := pr(a, nat44.TCP, 8080)
				r.Remote = netip.MustParseAddr("2001:db8:ffff::1")
				return r
			}(), nil},
			{"a global host on the same port", pr(global, nat44.TCP, 8080), nil},
			{"the router's DHCPv6 client port", pr(b, nat44.UDP, 546), nat44.ErrNotAllowed},
		}
		for _, tt := range tests {
			if _, err := s.OpenPinhole(tt.r); !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: OpenPinhole = %v, want %v", tt.name, err, tt.wantErr)
			}
		}
		if got, ok := s.dp.LookupNAT66(nat44.UDP, 8080); !ok || got != netip.AddrPortFrom(b, 8080) {
			t.Errorf("NAT66 udp/8080 leads to %v, %v; want [%v]:8080", got, ok, b)
		}
		if c := s.Status().Counters.Conflicts; c != 1 {
			t.Errorf("conflicts counted %d, want 1", c)
		}

		// Once the holder's pinholes close, the port is free for another.
		for _, p := range s.Pinholes() {
			if p.Host() == a {
				if err := s.ClosePinhole(nat44.Release{Owner: nat44.OwnerAdmin}, p.Key()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, ok := s.dp.LookupNAT66(nat44.TCP, 8080); ok {
			t.Errorf("NAT66 tcp/8080 still DNATed after its pinholes closed")
		}
		if _, err := s.OpenPinhole(pr(b, nat44.TCP, 8080)); err != nil {
			t.Errorf("OpenPinhole on a freed port = %v", err)
		}
		if got, ok := s.dp.LookupNAT66(nat44.TCP, 8080); !ok || got.Addr() != b {
			t.Errorf("NAT66 tcp/8080 leads to %v, %v; want %v", got, ok, b)
		}

		// The address goes (Teredo lost its qualification): no DNAT, and
		// hosts are their own external address again.
		if err := s.SetNAT66Address(netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.dp.LookupNAT66(nat44.TCP, 8080); ok {
			t.Errorf("DNAT without a NAT66 address")
		}
		if got := s.ExternalIPv6(b); got != b {
			t.Errorf("ExternalIPv6 without a NAT66 address = %v, want %v", got, b)
		}
	})
}
