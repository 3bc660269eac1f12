package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"gateway/dhcp/dhcp4"
)

// The tests build client messages with insomniacslk's dhcpv4 and read the
// replies with it: an implementation independent of dhcp4 on both sides.

func netIPv4(a netip.Addr) net.IP {
	if !a.IsValid() {
		return net.IP{0, 0, 0, 0}
	}
	b := a.As4()
	return net.IP(b[:])
}

// v4addr reads a dhcpv4 header address: 0.0.0.0 is the zero Addr.
func v4addr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	a = a.Unmap()
	if a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

var msgOpts = cmp.Options{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}

// toMsg is m as the core gets it: dhcpv4's fields mapped one by one, the
// options in the order dhcpv4 marshals them (by code, 82 last). Where m
// can go on the wire, its bytes must parse with dhcp4.ParseMessage into
// the same message, or be refused as malformed (an ill-sized option, that
// the core must drop too).
func toMsg(m *dhcpv4.DHCPv4) *dhcp4.Message {
	if m == nil {
		return nil
	}
	wireable := true
	addr := func(ip net.IP) netip.Addr {
		if len(ip) != 0 && ip.To4() == nil {
			wireable = false
			a, _ := netip.AddrFromSlice(ip)
			return a // an IPv6 or invalid address, which the core must refuse
		}
		return v4addr(ip)
	}
	out := &dhcp4.Message{Op: dhcp4.OpCode(m.OpCode), HType: uint8(m.HWType), Hops: m.HopCount, XID: m.TransactionID,
		Secs: m.NumSeconds, Flags: m.Flags,
		CIAddr: addr(m.ClientIPAddr), YIAddr: addr(m.YourIPAddr), SIAddr: addr(m.ServerIPAddr), GIAddr: addr(m.GatewayIPAddr),
		CHAddr: slices.Clone(m.ClientHWAddr), SName: m.ServerHostName, File: m.BootFileName}
	var codes []int
	for code := range m.Options {
		codes = append(codes, int(code))
	}
	slices.SortFunc(codes, func(a, b int) int {
		if a == 82 || b == 82 {
			return cmpBool(a == 82, b == 82)
		}
		return a - b
	})
	for _, code := range codes {
		out.Options = append(out.Options, dhcp4.Option{Code: dhcp4.OptionCode(code), Data: slices.Clone(m.Options[uint8(code)])})
	}
	if !wireable || len(m.ClientHWAddr) > 16 {
		return out
	}
	got, err := dhcp4.ParseMessage(m.ToBytes())
	switch {
	case err != nil && !errors.Is(err, dhcp4.ErrMalformed):
		panic(err)
	case err == nil:
		if diff := cmp.Diff(*out, got, msgOpts); diff != "" {
			panic("dhcp4 parses dhcpv4's bytes into another message (-dhcpv4 +dhcp4):\n" + diff)
		}
	}
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// result is an Action with its reply as dhcpv4 reads our bytes of it.
type result struct {
	Action
	Reply *dhcpv4.DHCPv4
}

// asResult encodes a's reply, checks that dhcp4 parses it back into the
// same message, and has dhcpv4 parse it.
func asResult(a Action) result {
	r := result{Action: a}
	if a.Reply == nil {
		return r
	}
	wire, err := a.Reply.Append(nil)
	if err != nil {
		panic(err)
	}
	back, err := dhcp4.ParseMessage(wire)
	if err != nil {
		panic(err)
	}
	if diff := cmp.Diff(*a.Reply, back, msgOpts); diff != "" {
		panic("reply changed in a round trip (-sent +parsed):\n" + diff)
	}
	if r.Reply, err = dhcpv4.FromBytes(wire); err != nil {
		panic(err)
	}
	return r
}

// handle runs m through c.
func handle(c *Core, m *dhcpv4.DHCPv4, now time.Time) result {
	return asResult(c.Handle(toMsg(m), now))
}

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
	a := handle(c, k.selecting(c.server, offer), now)
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
		a := handle(c, d, now)
		if a.Probe.IsValid() {
			c.ProbeDone(a.Probe, false, now)
			continue
		}
		if a.Reply == nil || a.Reply.MessageType() != dhcpv4.MessageTypeOffer {
			t.Fatalf("DISCOVER: %+v", summarize(a))
		}
		return v4addr(a.Reply.YourIPAddr)
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

func summarize(a result) summary {
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
		if a := v4addr(ip); a.IsValid() {
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

// durationSeconds is a time option's data, written here by hand.
func durationSeconds(d time.Duration) []byte {
	return []byte{byte(d / time.Second >> 24), byte(d / time.Second >> 16), byte(d / time.Second >> 8), byte(d / time.Second)}
}
