package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// t0 is the fake "now" of the tests.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	serverIP = netip.MustParseAddr("192.168.1.1")
	otherSrv = netip.MustParseAddr("192.168.1.2")
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// testConfig is a /24 with the default pool (.10-.254) and authoritative.
func testConfig() CoreConfig {
	return CoreConfig{
		ServerAddr:    netip.MustParsePrefix("192.168.1.1/24"),
		Domain:        "lan",
		Authoritative: true,
	}
}

func newCore(t testing.TB, cfg CoreConfig) *Core {
	t.Helper()
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatalf("NewCore: %v", err)
	}
	return c
}

// client builds the messages one DHCP client sends.
type client struct {
	mac    net.HardwareAddr
	id     []byte  // option 61, nil = none
	prl    []uint8 // option 55, nil = none
	opts   []dhcpv4.Option
	bcast  bool
	giaddr netip.Addr
}

func newClient(m string) *client { return &client{mac: mac(m)} }

func (k *client) msg(typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	base := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{1, 2, 3, 4}),
		dhcpv4.WithHwAddr(k.mac),
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithBroadcast(k.bcast),
	}
	if k.giaddr.IsValid() {
		base = append(base, dhcpv4.WithGatewayIP(netIPv4(k.giaddr)))
	}
	if k.id != nil {
		base = append(base, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(k.id)))
	}
	if k.prl != nil {
		codes := make([]dhcpv4.OptionCode, len(k.prl))
		for i, c := range k.prl {
			codes[i] = dhcpv4.GenericOptionCode(c)
		}
		base = append(base, dhcpv4.WithOption(dhcpv4.OptParameterRequestList(codes...)))
	}
	for _, o := range k.opts {
		base = append(base, dhcpv4.WithOption(o))
	}
	m, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		panic(err)
	}
	return m
}

func (k *client) discover(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	return k.msg(dhcpv4.MessageTypeDiscover, mods...)
}

// selecting is the REQUEST that accepts server's offer of addr.
func (k *client) selecting(server, addr netip.Addr) *dhcpv4.DHCPv4 {
	return k.msg(dhcpv4.MessageTypeRequest,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(netIPv4(server))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(addr))))
}

// initReboot is the REQUEST of a rebooting client that remembers addr.
func (k *client) initReboot(addr netip.Addr) *dhcpv4.DHCPv4 {
	return k.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(addr))))
}

// renew is the REQUEST of RENEWING (unicast) or REBINDING (broadcast).
func (k *client) renew(addr netip.Addr) *dhcpv4.DHCPv4 {
	return k.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(netIPv4(addr)))
}

func (k *client) release(server, addr netip.Addr) *dhcpv4.DHCPv4 {
	return k.msg(dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(netIPv4(addr)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(netIPv4(server))))
}

func (k *client) decline(server, addr netip.Addr) *dhcpv4.DHCPv4 {
	return k.msg(dhcpv4.MessageTypeDecline,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(netIPv4(server))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netIPv4(addr))))
}

func (k *client) inform(addr netip.Addr) *dhcpv4.DHCPv4 {
	return k.msg(dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(netIPv4(addr)))
}

// bindClient runs DISCOVER (answering any probe with "free"), then REQUEST,
// and returns the bound address.
func bindClient(t testing.TB, c *Core, k *client, now time.Time) netip.Addr {
	t.Helper()
	offer := offerFor(t, c, k, now)
	a := c.Handle(k.selecting(c.server, offer), now)
	if a.Reply == nil || a.Reply.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("REQUEST for %s: %+v", offer, summarize(a))
	}
	return offer
}

// offerFor runs DISCOVER, answering probes with "free", and returns the
// offered address.
func offerFor(t testing.TB, c *Core, k *client, now time.Time) netip.Addr {
	t.Helper()
	d := k.discover()
	for range 3 {
		a := c.Handle(d, now)
		if a.Probe.IsValid() {
			c.ProbeDone(a.Probe, false, now)
			continue
		}
		if a.Reply == nil || a.Reply.MessageType() != dhcpv4.MessageTypeOffer {
			t.Fatalf("DISCOVER: %+v", summarize(a))
		}
		y, _ := headerAddr(a.Reply.YourIPAddr)
		return y
	}
	t.Fatalf("DISCOVER: still probing")
	return netip.Addr{}
}

// summary is the part of an Action the tests compare.
type summary struct {
	Type      string
	Yiaddr    string `json:",omitempty"`
	Ciaddr    string `json:",omitempty"`
	Giaddr    string `json:",omitempty"`
	Broadcast bool   `json:",omitempty"`
	To        string `json:",omitempty"`
	Options   []uint8
	Probe     string `json:",omitempty"`
	Drop      string `json:",omitempty"`
	Commit    string `json:",omitempty"` // address of the committed lease
	Released  string `json:",omitempty"`
}

func summarize(a Action) summary {
	s := summary{Drop: a.Drop}
	if a.Probe.IsValid() {
		s.Probe = a.Probe.String()
	}
	if a.Commit != nil {
		s.Commit = a.Commit.Addr.String()
	}
	if a.Released != nil {
		s.Released = a.Released.Addr.String()
	}
	if a.Reply == nil {
		if s.Drop == "" && s.Probe == "" {
			s.Type = "none"
		}
		return s
	}
	r := a.Reply
	s.Type = r.MessageType().String()
	addr := func(ip net.IP) string {
		if a, _ := headerAddr(ip); a.IsValid() {
			return a.String()
		}
		return ""
	}
	s.Yiaddr, s.Ciaddr, s.Giaddr = addr(r.YourIPAddr), addr(r.ClientIPAddr), addr(r.GatewayIPAddr)
	s.Broadcast = r.IsBroadcast()
	s.To = a.To.Kind.String()
	if a.To.Addr.IsValid() {
		s.To += " " + a.To.Addr.String()
	}
	if a.To.HW != nil {
		s.To += " " + a.To.HW.String()
	}
	for code := range r.Options {
		s.Options = append(s.Options, code)
	}
	slices.Sort(s.Options)
	return s
}

// checkCore verifies the core's internal invariants: every index agrees
// with the entries, the pool's bitmaps say exactly which addresses are free
// and fresh, and memory is one-to-one.
func checkCore(c *Core) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var counts [numStates]int
	for a, e := range c.byAddr {
		if e.addr != a {
			bad("entry under %s has addr %s", a, e.addr)
		}
		if e.index < 0 || e.index >= len(c.heap) || c.heap[e.index] != e {
			bad("entry %s: bad heap index %d", a, e.index)
		}
		counts[e.state]++
		switch e.state {
		case stateQuarantined:
			if e.client != "" {
				bad("quarantined %s has client %s", a, e.client)
			}
		default:
			if e.client == "" || c.byClient[e.client] != e {
				bad("entry %s (state %d) not indexed by its client %q", a, e.state, e.client)
			}
		}
		if e.state == stateBound && (e.lease.Addr != a || !e.lease.Expires.Equal(e.expires)) {
			bad("bound %s: lease %+v, expires %s", a, e.lease, e.expires)
		}
		if r, ok := c.resByAddr[a]; ok && e.state == stateBound && e.lease.MAC != r.MAC.String() {
			bad("reserved %s (for %s) bound to %s", a, r.MAC, e.lease.MAC)
		}
		if !isHost(c.subnet, a) || a == c.server {
			bad("entry on %s, not a usable address", a)
		}
	}
	if counts != c.counts {
		bad("state counts %v, entries say %v", c.counts, counts)
	}
	if len(c.heap) != len(c.byAddr) {
		bad("heap has %d entries, byAddr %d", len(c.heap), len(c.byAddr))
	}
	for k, e := range c.byClient {
		if e.client != k || c.byAddr[e.addr] != e {
			bad("byClient[%s] is stale", k)
		}
	}
	for k, a := range c.memory {
		if c.memoryAddr[a] != k {
			bad("memory %s→%s not mirrored", k, a)
		}
		if !c.dynamic(a) {
			bad("memory %s→%s outside the dynamic pool", k, a)
		}
	}
	if len(c.memory) != len(c.memoryAddr) {
		bad("memory has %d entries, its inverse %d", len(c.memory), len(c.memoryAddr))
	}
	free, fresh := 0, 0
	for i := range c.pool.size {
		a := c.pool.addr(i)
		_, remembered := c.memoryAddr[a]
		wantFree := c.dynamic(a) && c.byAddr[a] == nil
		wantFresh := wantFree && !remembered
		if c.pool.free.has(i) != wantFree {
			bad("pool %s: free=%v, want %v", a, c.pool.free.has(i), wantFree)
		}
		if c.pool.fresh.has(i) != wantFresh {
			bad("pool %s: fresh=%v, want %v", a, c.pool.fresh.has(i), wantFresh)
		}
		if wantFree {
			free++
		}
		if wantFresh {
			fresh++
		}
	}
	if c.pool.free.count != free || c.pool.fresh.count != fresh {
		bad("pool counts free=%d fresh=%d, want %d %d", c.pool.free.count, c.pool.fresh.count, free, fresh)
	}
	for _, b := range []*addrBitmap{c.pool.free, c.pool.fresh} {
		if err := checkBitmap(b); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkBitmap verifies that each summary bit says whether its word is
// non-zero.
func checkBitmap(b *addrBitmap) error {
	for l := 0; l+1 < len(b.levels); l++ {
		for w, v := range b.levels[l] {
			up := b.levels[l+1][w>>6]&(1<<(w&63)) != 0
			if up != (v != 0) {
				return fmt.Errorf("bitmap level %d word %d: summary bit %v, word %#x", l, w, up, v)
			}
		}
	}
	return nil
}

func mustCheck(t testing.TB, c *Core) {
	t.Helper()
	if err := checkCore(c); err != nil {
		t.Fatalf("core invariants:\n%v", err)
	}
}
