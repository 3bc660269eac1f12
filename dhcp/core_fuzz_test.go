package dhcp

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"gateway/dhcp/dhcp4"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed-* files of testdata/fuzz from fuzzSeeds and fuzzConversations")

// fuzzConfig is a small pool (exhaustion is reachable), a reservation
// outside it, routes and an MTU, so that every path has something to do.
func fuzzConfig() CoreConfig {
	return CoreConfig{
		ServerAddr: netip.MustParsePrefix("192.168.1.1/24"),
		PoolStart:  ip("192.168.1.10"), PoolEnd: ip("192.168.1.20"),
		LeaseTime:     time.Hour,
		Domain:        "lan",
		MTU:           1500,
		Routes:        []Route{{Dest: netip.MustParsePrefix("10.8.0.0/16"), Gateway: ip("192.168.1.254")}},
		Reservations:  []Reservation{{MAC: mac("02:00:00:00:00:99"), Addr: ip("192.168.1.5"), Hostname: "printer"}},
		Authoritative: true,
	}
}

// fuzzLeases are in the core before each input: the seeds' clients hold
// (or held) them.
var fuzzLeases = []Lease{
	{Addr: ip("192.168.1.12"), MAC: "02:00:00:00:00:01", Hostname: "one", Expires: t0.Add(30 * time.Minute)},
	{Addr: ip("192.168.1.15"), MAC: "02:00:00:00:00:02", ClientID: "0102000000000002", Expires: t0.Add(2 * time.Hour)},
	{Addr: ip("192.168.1.18"), MAC: "02:00:00:00:00:03", Expires: t0.Add(-time.Hour)},
}

// fuzzSeeds are real client messages, built with the dhcpv4 helpers.
func fuzzSeeds() map[string][]byte {
	one := &client{mac: mac("02:00:00:00:00:01"), prl: []uint8{1, 3, 6, 12, 15, 26, 28, 121}, opts: []dhcpv4.Option{dhcpv4.OptHostName("one")}}
	two := &client{mac: mac("02:00:00:00:00:02"), id: []byte{1, 2, 0, 0, 0, 0, 0, 2}, bcast: true}
	three := newClient("02:00:00:00:00:03")
	fresh := &client{mac: mac("02:00:00:00:00:04"), bcast: true, opts: []dhcpv4.Option{
		dhcpv4.OptClassIdentifier("android-dhcp-14"),
		dhcpv4.OptMaxMessageSize(1500),
		dhcpv4.OptGeneric(dhcpv4.OptionFQDN, append([]byte{0x05, 0, 0}, encodeDNSName("phone.lan")...)),
	}}
	printer := &client{mac: mac("02:00:00:00:00:99"), prl: []uint8{1, 3, 12}}
	relayed := &client{mac: mac("02:00:00:00:00:05"), giaddr: ip("192.168.1.3"), opts: []dhcpv4.Option{
		dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 4, 'p', 'o', 'r', 't'}),
	}}
	reply := newClient("02:00:00:00:00:06").discover()
	reply.OpCode = dhcpv4.OpcodeBootReply
	reply.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeOffer))
	msgs := map[string]*dhcpv4.DHCPv4{
		"discover-bound":      one.discover(),
		"discover-new":        fresh.discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(ip("192.168.1.11"))))),
		"discover-reserved":   printer.discover(),
		"discover-relayed":    relayed.discover(),
		"request-selecting":   one.selecting(serverIP, ip("192.168.1.12")),
		"request-other-srv":   fresh.selecting(otherSrv, ip("192.168.1.11")),
		"request-init-reboot": three.initReboot(ip("192.168.1.18")),
		"request-renewing":    one.renew(ip("192.168.1.12")),
		"request-rebinding":   two.renew(ip("192.168.1.15")),
		"release":             one.release(serverIP, ip("192.168.1.12")),
		"decline":             two.decline(serverIP, ip("192.168.1.15")),
		"inform":              fresh.inform(ip("192.168.1.77")),
		"bootreply":           reply,
	}
	out := map[string][]byte{}
	for name, m := range msgs {
		out[name] = m.ToBytes()
	}
	return out
}

func FuzzHandle(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcp4.ParseMessage(b)
		if err != nil {
			return // the server drops what dhcp4 cannot parse
		}
		c := newCore(t, fuzzConfig())
		if refused := c.Restore(fuzzLeases, t0); len(refused) != 0 {
			t.Fatalf("Restore refused %v", refused)
		}
		steps := []struct {
			at    time.Duration
			inUse bool // answer to a probe asked in this step
		}{{0, true}, {time.Second, false}, {61 * time.Minute, false}}
		for _, s := range steps {
			now := t0.Add(s.at)
			a := c.Handle(&req, now)
			checkAction(t, c, &req, a)
			if a.Probe.IsValid() {
				c.ProbeDone(a.Probe, s.inUse, now)
			}
			if err := checkCore(c); err != nil {
				t.Fatalf("after %v: %v", s.at, err)
			}
			checkLeases(t, c)
		}
	})
}

// FuzzConversation runs a sequence of messages through one core, so that the
// fuzzer reaches states a single message cannot (a DECLINE after an ACK, two
// clients after one address, an expiry between two requests). The input is
// a series of records: gap in minutes (1 byte), flags (1 byte: bit 0 = the
// probe finds the address in use), length (2 bytes), message.
func FuzzConversation(f *testing.F) {
	for _, conv := range fuzzConversations() {
		f.Add(conv)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := newCore(t, fuzzConfig())
		c.Restore(fuzzLeases, t0)
		now := t0
		for n := 0; len(b) >= 4 && n < 16; n++ {
			gap, inUse, size := time.Duration(b[0])*time.Minute, b[1]&1 != 0, int(b[2])<<8|int(b[3])
			b = b[4:]
			if size > len(b) {
				size = len(b)
			}
			msg := b[:size]
			b = b[size:]
			now = now.Add(gap)
			req, err := dhcp4.ParseMessage(msg)
			if err != nil {
				continue
			}
			for range 3 { // as the server does: probe, then the same message again
				a := c.Handle(&req, now)
				checkAction(t, c, &req, a)
				if !a.Probe.IsValid() {
					break
				}
				c.ProbeDone(a.Probe, inUse, now)
			}
			if err := checkCore(c); err != nil {
				t.Fatalf("message %d: %v", n, err)
			}
			checkLeases(t, c)
			c.Expire(now)
		}
	})
}

// fuzzConversations are seed conversations for FuzzConversation.
func fuzzConversations() map[string][]byte {
	seeds := fuzzSeeds()
	fresh := newClient("02:00:00:00:00:04")
	rival := newClient("02:00:00:00:00:07")
	a11 := ip("192.168.1.11")
	want11 := dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(a11)))
	rec := func(gap byte, inUse bool, m []byte) []byte {
		flags := byte(0)
		if inUse {
			flags = 1
		}
		return append([]byte{gap, flags, byte(len(m) >> 8), byte(len(m))}, m...)
	}
	conv := func(recs ...[]byte) []byte { return slices.Concat(recs...) }
	return map[string][]byte{
		"dora-renew-decline": conv(
			rec(0, false, fresh.discover(want11).ToBytes()),
			rec(0, false, fresh.selecting(serverIP, a11).ToBytes()),
			rec(30, false, fresh.renew(a11).ToBytes()),
			rec(1, false, fresh.decline(serverIP, a11).ToBytes()),
			rec(11, false, rival.discover(want11).ToBytes()),
		),
		"conflict-then-dora-release-rediscover": conv(
			rec(0, true, fresh.discover(want11).ToBytes()),
			rec(0, false, fresh.discover().ToBytes()),
			rec(0, false, fresh.release(serverIP, a11).ToBytes()),
			rec(5, false, fresh.discover().ToBytes()),
		),
		"two-clients-one-address": conv(
			rec(0, false, fresh.discover(want11).ToBytes()),
			rec(0, false, rival.initReboot(a11).ToBytes()),
			rec(0, false, rival.discover(want11).ToBytes()),
			rec(2, false, fresh.selecting(serverIP, a11).ToBytes()),
			rec(0, false, rival.selecting(serverIP, a11).ToBytes()),
		),
		"expired lease comes back": conv(
			rec(0, false, seeds["request-renewing"]),
			rec(255, false, seeds["request-init-reboot"]),
			rec(200, false, seeds["discover-bound"]),
			rec(0, false, seeds["discover-reserved"]),
			rec(0, false, seeds["decline"]),
		),
	}
}

// checkAction checks the properties every answer has.
func checkAction(t *testing.T, c *Core, req *dhcp4.Message, a Action) {
	t.Helper()
	n := 0
	if a.Reply != nil {
		n++
	}
	if a.Probe.IsValid() {
		n++
		if !c.dynamic(a.Probe) {
			t.Fatalf("probe of %s, not a dynamic pool address", a.Probe)
		}
	}
	if a.Drop != "" {
		n++
	}
	if n > 1 {
		t.Fatalf("action with more than one outcome: %+v", a)
	}
	if a.Commit != nil && !slices.ContainsFunc(c.Leases(), func(l Lease) bool { return cmp.Equal(l, *a.Commit, addrComparer) }) {
		t.Fatalf("committed lease %+v is not bound", *a.Commit)
	}
	if a.Reply == nil {
		return
	}
	wire, err := a.Reply.Append(nil)
	if err != nil {
		t.Fatalf("reply cannot be encoded: %v", err)
	}
	back, err := dhcp4.ParseMessage(wire)
	if err != nil {
		t.Fatalf("reply does not parse back: %v", err)
	}
	if diff := cmp.Diff(*a.Reply, back, msgOpts); diff != "" {
		t.Fatalf("reply changed in a round trip (-sent +parsed)\n%s", diff)
	}
	// An independent reader of our bytes: dhcpv4 writes back the same.
	if v4, err := dhcpv4.FromBytes(wire); err != nil || !bytes.Equal(v4.ToBytes(), wire) {
		t.Fatalf("dhcpv4 reads the reply differently: %v", err)
	}
	if a.To.Kind < DestBroadcast || a.To.Kind > DestRelay || !a.To.Addr.IsValid() {
		t.Fatalf("reply without a destination: %+v", a.To)
	}
	if back.Op != dhcp4.BootReply || back.XID != req.XID {
		t.Fatalf("reply header: %+v", back)
	}
	y := back.YIAddr
	switch mt := back.Type(); {
	case mt == dhcp4.Nak || (mt == dhcp4.Ack && req.Type() == dhcp4.Inform):
		if y.IsValid() {
			t.Fatalf("%s with yiaddr %s", mt, y)
		}
	case mt == dhcp4.Offer || mt == dhcp4.Ack:
		if !isHost(c.subnet, y) || y == c.server {
			t.Fatalf("%s of %s: not a host address of %s other than the server", mt, y, c.subnet)
		}
	default:
		t.Fatalf("reply of type %s", mt)
	}
}

var addrComparer = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// checkLeases: no address bound twice, no client bound twice.
func checkLeases(t *testing.T, c *Core) {
	t.Helper()
	addrs := map[netip.Addr]bool{}
	clients := map[string]netip.Addr{}
	for _, l := range c.Leases() {
		if addrs[l.Addr] {
			t.Fatalf("%s bound twice", l.Addr)
		}
		addrs[l.Addr] = true
		key := "hw:" + l.MAC
		if l.ClientID != "" {
			key = "id:" + l.ClientID
		}
		if other, dup := clients[key]; dup {
			t.Fatalf("client %s holds %s and %s", key, other, l.Addr)
		}
		clients[key] = l.Addr
		if !isHost(c.subnet, l.Addr) || l.Addr == c.server {
			t.Fatalf("lease of %s", l.Addr)
		}
	}
}

// TestFuzzSeedPaths shows that each seed reaches the path it is named for.
func TestFuzzSeedPaths(t *testing.T) {
	want := map[string]summary{
		"discover-bound":      {Type: "OFFER", Yiaddr: "192.168.1.12"},
		"discover-new":        {Probe: "192.168.1.11"},
		"discover-reserved":   {Type: "OFFER", Yiaddr: "192.168.1.5"},
		"discover-relayed":    {Probe: c0pickIn(fuzzConfig(), mac("02:00:00:00:00:05"))},
		"request-selecting":   {Type: "ACK", Yiaddr: "192.168.1.12", Commit: "192.168.1.12"},
		"request-other-srv":   {Drop: DropWrongServer},
		"request-init-reboot": {Type: "ACK", Yiaddr: "192.168.1.18", Commit: "192.168.1.18"},
		"request-renewing":    {Type: "ACK", Yiaddr: "192.168.1.12", Ciaddr: "192.168.1.12", Commit: "192.168.1.12"},
		"request-rebinding":   {Type: "ACK", Yiaddr: "192.168.1.15", Ciaddr: "192.168.1.15", Commit: "192.168.1.15"},
		"release":             {Type: "none", Released: "192.168.1.12"},
		"decline":             {Type: "none", Released: "192.168.1.15"},
		"inform":              {Type: "ACK", Ciaddr: "192.168.1.77"},
		"bootreply":           {Drop: DropNotRequest},
	}
	for name, b := range fuzzSeeds() {
		t.Run(name, func(t *testing.T) {
			req, err := dhcp4.ParseMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			c := newCore(t, fuzzConfig())
			c.Restore(fuzzLeases, t0)
			got := summarize(asResult(c.Handle(&req, t0)))
			got.Giaddr, got.Broadcast, got.To, got.Options = "", false, "", nil // checked elsewhere
			if diff := cmp.Diff(want[name], got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// c0pickIn is the address a fresh core with cfg picks for a client with mac.
func c0pickIn(cfg CoreConfig, m net.HardwareAddr) string {
	c, err := NewCore(cfg)
	if err != nil {
		panic(err)
	}
	a, _ := c.pool.pick(hashKey(macKey(m)))
	return a.String()
}

// TestFuzzSeedFiles keeps the seed corpus in testdata in step with
// fuzzSeeds and fuzzConversations; -update-fuzz-seeds rewrites it.
func TestFuzzSeedFiles(t *testing.T) {
	type seed struct{ target, name string }
	all := map[seed][]byte{}
	for name, b := range fuzzSeeds() {
		all[seed{"FuzzHandle", name}] = b
	}
	for name, b := range fuzzConversations() {
		all[seed{"FuzzConversation", name}] = b
	}
	for s, b := range all {
		dir := filepath.Join("testdata", "fuzz", s.target)
		path := filepath.Join(dir, "seed-"+strings.ReplaceAll(s.name, " ", "-"))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./dhcp -run TestFuzzSeedFiles -update-fuzz-seeds)", err)
		}
		if string(got) != want {
			t.Errorf("%s is out of date (run go test ./dhcp -run TestFuzzSeedFiles -update-fuzz-seeds)", path)
		}
	}
}
