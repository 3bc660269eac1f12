package dhcp4

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	chaddr = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}
	xid    = [4]byte{0xa1, 0xb2, 0xc3, 0xd4}
	srv    = []byte{192, 168, 1, 1}
	leased = netip.MustParseAddr("192.168.1.50")
)

func long() []byte {
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func request(opts ...Option) Message {
	return Message{Op: BootRequest, HType: HTypeEthernet, XID: xid, CHAddr: chaddr, Options: opts}
}

func reply(yiaddr netip.Addr, opts ...Option) Message {
	return Message{Op: BootReply, HType: HTypeEthernet, XID: xid, CHAddr: chaddr, YIAddr: yiaddr, Options: opts}
}

// golden are the messages in testdata/golden, encoded by an independent
// implementation, github.com/insomniacslk/dhcp's dhcpv4 (its generator
// is golden_gen_test.go), as our codec must read and write them. The
// options are in its order: by code, 82 last.
var golden = map[string]Message{
	"discover": func() Message {
		m := request(Option{OptHostName, []byte("laptop")}, TypeOption(Discover),
			Option{OptParamRequest, []byte{1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42}}, Uint16Option(OptMaxMessageSize, 1500), Option{OptVendorClass, []byte("MSFT 5.0")},
			Option{OptClientID, []byte{1, 2, 0, 0, 0, 0, 0x42}})
		m.Flags, m.Secs = FlagBroadcast, 3
		return m
	}(),
	"request-selecting": request(AddrOption(OptRequestedIP, leased), TypeOption(Request),
		Option{OptServerID, srv}, Option{OptParamRequest, []byte{1, 3, 6}}),
	"request-renewing": func() Message {
		m := request(DurationOption(OptLeaseTime, time.Hour), TypeOption(Request))
		m.CIAddr = leased
		return m
	}(),
	"release": func() Message {
		m := request(TypeOption(Release), Option{OptServerID, srv})
		m.CIAddr = leased
		return m
	}(),
	"discover-relayed": func() Message {
		m := request(TypeOption(Discover), Option{OptClientFQDN, []byte{0x05, 0, 0, 5, 'p', 'h', 'o', 'n', 'e', 0}},
			Option{OptRelayAgentInfo, []byte{1, 4, 'p', 'o', 'r', 't'}})
		m.Hops, m.GIAddr = 1, netip.MustParseAddr("192.168.1.3")
		return m
	}(),
	"offer": reply(leased,
		Option{OptSubnetMask, []byte{255, 255, 255, 0}}, Option{OptRouter, srv},
		AddrsOption(OptDNS, []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("198.51.100.53")}),
		Option{OptHostName, []byte("printer")}, Option{OptDomainName, []byte("lan")}, Uint16Option(OptMTU, 1500),
		AddrOption(OptBroadcastAddr, netip.MustParseAddr("192.168.1.255")),
		DurationOption(OptLeaseTime, 12*time.Hour), TypeOption(Offer), Option{OptServerID, srv},
		DurationOption(OptT1, 6*time.Hour), DurationOption(OptT2, 10*time.Hour+30*time.Minute),
		Option{OptClasslessRoutes, AppendRoutes(nil, []Route{
			{netip.MustParsePrefix("10.8.0.0/16"), netip.MustParseAddr("192.168.1.254")},
			{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("192.168.1.1")},
			{netip.MustParsePrefix("203.0.113.0/24"), netip.IPv4Unspecified()},
		})}),
	"ack-long": func() Message {
		m := reply(leased, DurationOption(OptLeaseTime, 0xffffffff*time.Second), TypeOption(Ack), Option{OptServerID, srv},
			Option{224, long()}, Option{250, []byte{}})
		m.CIAddr = leased
		return m
	}(),
	"nak": func() Message {
		m := reply(netip.Addr{}, TypeOption(Nak), Option{OptServerID, srv}, Option{OptMessage, []byte("requested address was not offered")})
		m.Flags = FlagBroadcast
		return m
	}(),
	"offer-boot": func() Message {
		m := reply(leased, DurationOption(OptLeaseTime, time.Hour), TypeOption(Offer), Option{OptServerID, srv})
		m.SIAddr, m.SName, m.File = netip.MustParseAddr("192.168.1.1"), "boot.lan", "pxelinux.0"
		return m
	}(),
}

var cmpOpts = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// TestGolden parses each golden message into the value it must be, and
// encodes that value back into the same bytes.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.bin")
	if len(files) != len(golden) {
		t.Fatalf("%d golden files, %d expected values", len(files), len(golden))
	}
	for name, want := range golden {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/golden", name+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
				t.Errorf("parsed (-want +got):\n%s", diff)
			}
			wire, err := want.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(b, wire); diff != "" {
				t.Errorf("encoded (-golden +ours):\n%s", diff)
			}
		})
	}
}

// TestClients reads the DISCOVERs of real clients (testdata/clients), in
// their option order, not insomniacslk's.
func TestClients(t *testing.T) {
	for name, want := range map[string][]OptionCode{
		"dhclient": {53, 12, 55},
		"dhcpcd":   {53, 55, 57, 61, 80, 12, 116, 145},
		"udhcpc":   {53, 57, 55, 12, 60, 61},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/clients", name+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			var codes []OptionCode
			for _, o := range m.Options {
				codes = append(codes, o.Code)
			}
			if diff := cmp.Diff(want, codes); diff != "" {
				t.Errorf("options (-want +got)\n%s", diff)
			}
			if m.Op != BootRequest || m.Type() != Discover || m.HType != HTypeEthernet || m.CHAddr.String() != "02:00:00:00:00:42" || m.CIAddr.IsValid() {
				t.Errorf("header %+v", m)
			}
			if host := m.Text(OptHostName); host != "host-"+name && name != "dhclient" {
				t.Errorf("host name %q", host)
			}
			// Ours in the same order: the same bytes up to the End option.
			wire, err := m.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if end := bytes.IndexByte(wire[headerLen+4:], byte(OptEnd)); end < 0 || !bytes.Equal(wire[:headerLen+4+end], b[:headerLen+4+end]) {
				t.Errorf("re-encoded differently:\n% x\n% x", wire, b)
			}
		})
	}
}

func TestAccessors(t *testing.T) {
	offer, ack := golden["offer"], golden["ack-long"]
	disc, sel := golden["discover"], golden["request-selecting"]
	mask, _ := offer.Addr(OptSubnetMask)
	bcast, _ := offer.Addr(OptBroadcastAddr)
	requested, _ := sel.Addr(OptRequestedIP)
	server, _ := sel.Addr(OptServerID)
	lt, _ := offer.Duration(OptLeaseTime)
	t1, _ := offer.Duration(OptT1)
	t2, _ := offer.Duration(OptT2)
	inf, _ := ack.Duration(OptLeaseTime)
	mtu, _ := offer.Uint16(OptMTU)
	size, _ := disc.Uint16(OptMaxMessageSize)
	routes, ok := offer.Routes()
	_, noServer := disc.Addr(OptServerID)
	cid, _ := disc.Get(OptClientID)
	type values struct {
		Types                          []MessageType
		Mask, Bcast, Requested, Server netip.Addr
		Routers, DNS                   []netip.Addr
		LeaseTime, T1, T2, Infinite    time.Duration
		MTU, MaxSize                   uint16
		Host, Domain, Vendor           string
		ClientID                       []byte
		PRL, NoPRL                     []OptionCode
		Routes                         []Route
		RoutesOK, NoServer             bool
	}
	want := values{
		Types: []MessageType{Discover, Request, Offer, Ack, Nak, 0},
		Mask:  netip.MustParseAddr("255.255.255.0"), Bcast: netip.MustParseAddr("192.168.1.255"),
		Requested: leased, Server: netip.MustParseAddr("192.168.1.1"),
		Routers:   []netip.Addr{netip.MustParseAddr("192.168.1.1")},
		DNS:       []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("198.51.100.53")},
		LeaseTime: 12 * time.Hour, T1: 6 * time.Hour, T2: 10*time.Hour + 30*time.Minute, Infinite: 0xffffffff * time.Second,
		MTU: 1500, MaxSize: 1500,
		Host: "laptop", Domain: "lan", Vendor: "MSFT 5.0",
		ClientID: []byte{1, 2, 0, 0, 0, 0, 0x42},
		PRL:      []OptionCode{1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42},
		Routes: []Route{
			{netip.MustParsePrefix("10.8.0.0/16"), netip.MustParseAddr("192.168.1.254")},
			{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("192.168.1.1")},
			{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParseAddr("0.0.0.0")},
		},
		RoutesOK: true,
	}
	bootp := request()
	nak := golden["nak"]
	got := values{
		Types: []MessageType{disc.Type(), sel.Type(), offer.Type(), ack.Type(), nak.Type(), bootp.Type()},
		Mask:  mask, Bcast: bcast, Requested: requested, Server: server,
		Routers: offer.Addrs(OptRouter), DNS: offer.Addrs(OptDNS),
		LeaseTime: lt, T1: t1, T2: t2, Infinite: inf, MTU: mtu, MaxSize: size,
		Host: disc.Text(OptHostName), Domain: offer.Text(OptDomainName), Vendor: disc.Text(OptVendorClass),
		ClientID: cid, PRL: disc.ParamRequestList(), NoPRL: offer.ParamRequestList(),
		Routes: routes, RoutesOK: ok, NoServer: noServer,
	}
	if diff := cmp.Diff(want, got, cmpOpts, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	// An empty request list is a list.
	empty := request(Option{OptParamRequest, []byte{}})
	if l := empty.ParamRequestList(); l == nil || len(l) != 0 {
		t.Errorf("empty list read as %v", l)
	}
	// Set replaces in place, or appends.
	m := request(TypeOption(Discover), Option{OptHostName, []byte("a")})
	m.Set(TypeOption(Request))
	m.Set(Option{OptDomainName, []byte("lan")})
	if diff := cmp.Diff([]Option{TypeOption(Request), {OptHostName, []byte("a")}, {OptDomainName, []byte("lan")}}, m.Options); diff != "" {
		t.Errorf("Set (-want +got)\n%s", diff)
	}
}

// overloaded builds a request whose options spill into file and sname
// as option 52 says (RFC 2132 section 9.3).
func overloaded(overload byte, options, file, sname []byte) []byte {
	b := make([]byte, headerLen)
	b[0], b[1], b[2] = 1, 1, 6
	copy(b[4:], xid[:])
	copy(b[28:], chaddr)
	copy(b[44:], sname)
	copy(b[108:], file)
	b = append(b, magicCookie[:]...)
	b = append(b, 52, 1, overload)
	return append(append(b, options...), 255)
}

func TestOverload(t *testing.T) {
	host := []byte{12, 3, 'p', 'c', '1'}
	for _, tc := range []struct {
		name                 string
		overload             byte
		options, file, sname []byte
		want                 Message
	}{
		{"file", 1, []byte{53, 1, 1, 61, 2, 1, 2}, []byte{61, 2, 3, 4, 255}, []byte("srv"), func() Message {
			m := request(TypeOption(Discover), Option{OptClientID, []byte{1, 2, 3, 4}})
			m.SName = "srv"
			return m
		}()},
		// Options first, then file, then sname (RFC 2131 section 4.1),
		// concatenated in that order (RFC 3396 section 5); no End in a
		// field that is full.
		{"both", 3, []byte{53, 1, 3}, append([]byte{0, 0, 61, 1, 'a'}, host...), []byte{61, 1, 'b', 50, 4, 192, 168, 1, 50, 255}, request(
			TypeOption(Request), Option{OptClientID, []byte("ab")}, Option{OptHostName, []byte("pc1")}, AddrOption(OptRequestedIP, leased))},
		{"sname", 2, []byte{53, 1, 1}, []byte("pxelinux.0"), append(host, 255), func() Message {
			m := request(TypeOption(Discover), Option{OptHostName, []byte("pc1")})
			m.File = "pxelinux.0"
			return m
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMessage(overloaded(tc.overload, tc.options, tc.file, tc.sname))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, m, cmpOpts); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	good, err := golden["discover"].Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	// with returns the discover with its options replaced by opts (End
	// is not added).
	with := func(opts ...byte) []byte {
		return append(bytes.Clone(good[:headerLen+4]), opts...)
	}
	set := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"header only", good[:headerLen]},
		{"op 0", set(0, 0)},
		{"op 3", set(0, 3)},
		{"hlen 17", set(2, 17)},
		{"no magic cookie", set(headerLen, 0)},
		{"no end", with(53, 1, 1)},
		{"option header cut", with(53)},
		{"option past the end", with(53, 2, 1)},
		{"message type of 2 octets", with(53, 2, 1, 1, 255)},
		{"two message types", with(53, 1, 1, 53, 1, 3, 255)},
		{"requested address of 3 octets", with(50, 3, 1, 2, 3, 255)},
		{"server identifier of 5 octets", with(54, 5, 1, 2, 3, 4, 5, 255)},
		{"lease time of 2 octets", with(51, 2, 0, 1, 255)},
		{"T1 of 8 octets", with(58, 8, 0, 0, 0, 0, 0, 0, 0, 1, 255)},
		{"max size of 1 octet", with(57, 1, 2, 255)},
		{"MTU of 4 octets", with(26, 4, 0, 0, 5, 0xdc, 255)},
		{"subnet mask of 0 octets", with(1, 0, 255)},
		{"router of 6 octets", with(3, 6, 1, 2, 3, 4, 5, 6, 255)},
		{"DNS of 0 octets", with(6, 0, 255)},
		{"route of width 33", with(121, 6, 33, 10, 1, 1, 1, 1, 255)},
		{"route cut short", with(121, 5, 16, 10, 8, 192, 168, 255)},
		{"route with host bits", with(121, 7, 9, 10, 64, 1, 1, 1, 1, 255)},
		{"overload 0", with(52, 1, 0, 255)},
		{"overload 4", with(52, 1, 4, 255)},
		{"overload of 2 octets", with(52, 2, 1, 1, 255)},
		{"two overloads", with(52, 1, 1, 52, 1, 1, 255)},
		{"overload in file", overloaded(1, nil, []byte{52, 1, 2, 255}, nil)},
		{"option past the end of file", overloaded(1, nil, append(make([]byte, 126), 12, 5), nil)},
		{"bad option in sname", overloaded(2, nil, nil, []byte{53, 2, 1, 1, 255})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseMessage(tc.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
		})
	}
	if r, err := ParseRoutes([]byte{9, 10, 128, 1, 1, 1, 1}); err != nil || r[0].Dest != netip.MustParsePrefix("10.128.0.0/9") {
		t.Errorf("route 10.128.0.0/9: %v, %v", r, err)
	}
}

// TestPadAndEnd: pad options are skipped, what follows End is ignored.
func TestPadAndEnd(t *testing.T) {
	good, _ := golden["release"].Append(nil)
	b := append(bytes.Clone(good[:headerLen+4]), 0, 0, 53, 1, 7, 0, 54, 4, 192, 168, 1, 1, 255, 12, 99)
	b[12], b[13], b[14], b[15] = 192, 168, 1, 50
	m, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(golden["release"], m, cmpOpts); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestAppendRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
	}{
		{"op 0", Message{}},
		{"IPv6 yiaddr", reply(netip.MustParseAddr("2001:db8::1"))},
		{"chaddr of 17 octets", Message{Op: BootReply, CHAddr: make(net.HardwareAddr, 17)}},
		{"sname of 65 octets", Message{Op: BootReply, SName: string(make([]byte, 65))}},
		{"NUL in file", Message{Op: BootReply, File: "a\x00b"}},
		{"option twice", reply(netip.Addr{}, TypeOption(Ack), TypeOption(Ack))},
		{"pad in the list", reply(netip.Addr{}, Option{OptPad, nil})},
		{"end in the list", reply(netip.Addr{}, Option{OptEnd, nil})},
		{"overload in the list", reply(netip.Addr{}, Option{OptOverload, []byte{1}})},
		{"message type of 0 octets", reply(netip.Addr{}, Option{OptMessageType, nil})},
		{"IPv6 server identifier", reply(netip.Addr{}, AddrOption(OptServerID, netip.MustParseAddr("2001:db8::53")))},
		{"only IPv6 DNS servers", reply(netip.Addr{}, AddrsOption(OptDNS, []netip.Addr{netip.MustParseAddr("2001:db8::53")}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.m.Append(nil); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
		})
	}
}

// TestAppendPads: a message is at least 300 octets, and Append appends
// to what dst holds.
func TestAppendPads(t *testing.T) {
	b, err := request(TypeOption(Discover)).Append([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 1+minLen || b[0] != 'x' || b[1] != byte(BootRequest) {
		t.Fatalf("%d octets: % x", len(b), b[:4])
	}
	if _, err := ParseMessage(b[1:]); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseMessage(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.bin")
	captured, _ := filepath.Glob("testdata/clients/*.bin")
	for _, p := range append(files, captured...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(overloaded(3, []byte{53, 1, 3}, []byte{0, 61, 1, 'a', 255}, []byte{61, 1, 'b', 255}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return // rejecting is fine; crashing is not
		}
		wire, err := m.Append(nil)
		if err != nil {
			t.Fatalf("accepted input cannot be re-encoded: %v", err)
		}
		back, err := ParseMessage(wire)
		if err != nil {
			t.Fatalf("re-encoded message refused: %v", err)
		}
		if diff := cmp.Diff(m, back, cmpOpts); diff != "" {
			t.Fatalf("round trip changed the message (-first +second):\n%s", diff)
		}
	})
}
