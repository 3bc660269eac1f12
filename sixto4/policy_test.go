package sixto4

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

var (
	siteA  = netip.MustParseAddr("192.0.2.2")    // 2002:c000:202::/48
	siteB  = netip.MustParseAddr("198.51.100.2") // 2002:c633:6402::/48
	relay4 = netip.MustParseAddr("203.0.113.2")  // 2002:cb00:7102::/48
	native = "2001:db8:1::2"
)

// ipv6 builds an IPv6 packet with an ICMPv6 echo request (or next header
// nh) and n bytes of payload after the 8-byte ICMP header.
func ipv6(src, dst string, n int) []byte {
	b := make([]byte, ipv6HeaderLen+8+n)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(8+n))
	b[6], b[7] = protoICMPv6, 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	b[40] = 128
	return b
}

func ip4(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestPrefixAndEmbedded(t *testing.T) {
	p, ok := PrefixOf(ip4("192.0.2.2"))
	if !ok || p.String() != "2002:c000:202::/48" {
		t.Fatalf("PrefixOf = %v %v", p, ok)
	}
	r, _ := RouterAddr(ip4("203.0.113.2"))
	if r.String() != "2002:cb00:7102::1" {
		t.Fatalf("RouterAddr = %v", r)
	}
	for _, c := range []struct {
		v6   string
		want string
	}{
		{"2002:c633:6402:5::9", "198.51.100.2"},
		{"2002:0a00:0001::1", "10.0.0.1"},
		{"2001:db8::1", ""},
		{"::ffff:192.0.2.1", ""},
	} {
		got, ok := EmbeddedIPv4(netip.MustParseAddr(c.v6))
		if c.want == "" && ok || c.want != "" && got.String() != c.want {
			t.Errorf("EmbeddedIPv4(%s) = %v %v, want %q", c.v6, got, ok, c.want)
		}
	}
	if _, ok := PrefixOf(netip.MustParseAddr("2001:db8::1")); ok {
		t.Error("PrefixOf accepted an IPv6 address")
	}
}

func TestClassOf(t *testing.T) {
	for a, want := range map[string]Class{
		"8.8.8.8": Public, "0.1.2.3": Zero, "10.1.1.1": Private, "172.31.0.1": Private,
		"192.168.1.1": Private, "100.64.0.1": Shared, "100.127.255.255": Shared, "127.0.0.1": Loopback,
		"169.254.1.1": LinkLocal, "224.0.0.1": Multicast, "239.1.1.1": Multicast,
		"255.255.255.255": Broadcast, "240.0.0.1": Reserved, "192.0.0.8": Reserved, "198.18.0.1": Reserved,
		"192.0.2.1": Documentation, "198.51.100.1": Documentation, "203.0.113.1": Documentation, "172.32.0.1": Public,
	} {
		if got := ClassOf(ip4(a)); got != want {
			t.Errorf("ClassOf(%s) = %v, want %v", a, got, want)
		}
	}
	if Usable(ip4("192.0.2.1"), false) || !Usable(ip4("192.0.2.1"), true) || Usable(ip4("10.0.0.1"), true) {
		t.Error("Usable and test nets disagree")
	}
}

// TestDecapsulate is every check of RFC 3964 section 5.2 (and the relay's
// own), each case with the reason it must be counted under.
func TestDecapsulate(t *testing.T) {
	router := newPolicy(Router, siteA, relay4, 1480, true)
	noRelay := newPolicy(Router, siteA, netip.Addr{}, 1480, true)
	relay := newPolicy(Relay, relay4, netip.Addr{}, 1480, true)
	strict := newPolicy(Router, ip4("8.8.4.4"), ip4("9.9.9.9"), 1480, false)
	const (
		a = "2002:c000:202:1::10" // a host of site A (ours in router)
		b = "2002:c633:6402::1"   // site B
	)
	type tc struct {
		name   string
		p      *policy
		outer  netip.Addr // outer source
		to     netip.Addr // outer destination (default: the policy's local)
		inner  []byte
		mangle func([]byte)
		want   Reason
	}
	cases := []tc{
		{"6to4 site to us", &router, siteB, netip.Addr{}, ipv6(b, a, 8), nil, 0},
		{"native through our relay", &router, relay4, netip.Addr{}, ipv6(native, a, 8), nil, 0},
		{"native not from the relay", &router, siteB, netip.Addr{}, ipv6(native, a, 8), nil, NativeNotRelay},
		{"native with no relay configured", &noRelay, relay4, netip.Addr{}, ipv6(native, a, 8), nil, NativeNotRelay},
		{"inner source does not match outer", &router, relay4, netip.Addr{}, ipv6(b, a, 8), nil, SrcNotOuter},
		{"inner source embeds RFC 1918", &router, siteB, netip.Addr{}, ipv6("2002:c0a8:101::1", a, 8), nil, SrcEmbedded},
		{"inner source embeds 10/8", &router, siteB, netip.Addr{}, ipv6("2002:0a00:1::1", a, 8), nil, SrcEmbedded},
		{"inner source embeds shared 100.64/10", &router, siteB, netip.Addr{}, ipv6("2002:6440:1::1", a, 8), nil, SrcEmbedded},
		{"inner source embeds loopback", &router, siteB, netip.Addr{}, ipv6("2002:7f00:1::1", a, 8), nil, SrcEmbedded},
		{"inner source embeds link-local", &router, siteB, netip.Addr{}, ipv6("2002:a9fe:101::1", a, 8), nil, SrcEmbedded},
		{"inner source embeds multicast", &router, siteB, netip.Addr{}, ipv6("2002:e000:1::1", a, 8), nil, SrcEmbedded},
		{"inner source embeds broadcast", &router, siteB, netip.Addr{}, ipv6("2002:ffff:ffff::1", a, 8), nil, SrcEmbedded},
		{"inner source embeds 0/8", &router, siteB, netip.Addr{}, ipv6("2002:0000:0001::1", a, 8), nil, SrcEmbedded},
		{"inner source embeds 240/4", &router, siteB, netip.Addr{}, ipv6("2002:f000:1::1", a, 8), nil, SrcEmbedded},
		{"inner source embeds a test net when they are refused", &strict, ip4("8.8.8.8"), netip.Addr{}, ipv6("2002:c000:201::1", "2002:0808:0404::1", 8), nil, SrcEmbedded},
		{"inner destination embeds private", &router, siteB, netip.Addr{}, ipv6(b, "2002:c0a8:101::1", 8), nil, DstEmbedded},
		{"our own prefix from outside", &router, siteB, netip.Addr{}, ipv6("2002:c000:202:7::1", a, 8), nil, SrcOwnPrefix},
		{"destination not our prefix", &router, siteB, netip.Addr{}, ipv6(b, "2002:cb00:7102::1", 8), nil, DstNotOurs},
		{"native destination at a router", &router, relay4, netip.Addr{}, ipv6(native, "2001:db8:9::1", 8), nil, DstNotOurs},
		{"outer source private", &router, ip4("192.168.1.1"), netip.Addr{}, ipv6("2002:c0a8:101::1", a, 8), nil, OuterSrc},
		{"outer source shared", &router, ip4("100.64.0.1"), netip.Addr{}, ipv6(b, a, 8), nil, OuterSrc},
		{"outer source multicast", &router, ip4("224.0.0.5"), netip.Addr{}, ipv6(b, a, 8), nil, OuterSrc},
		{"outer source broadcast", &router, ip4("255.255.255.255"), netip.Addr{}, ipv6(b, a, 8), nil, OuterSrc},
		{"outer destination not ours", &router, siteB, ip4("192.0.2.3"), ipv6(b, a, 8), nil, OuterDst},
		{"inner multicast destination", &router, siteB, netip.Addr{}, ipv6(b, "ff02::1", 8), nil, InnerAddr},
		{"inner multicast source", &router, siteB, netip.Addr{}, ipv6("ff0e::1", a, 8), nil, InnerAddr},
		{"inner unspecified source", &router, siteB, netip.Addr{}, ipv6("::", a, 8), nil, InnerAddr},
		{"inner loopback destination", &router, siteB, netip.Addr{}, ipv6(b, "::1", 8), nil, InnerAddr},
		{"inner link-local source", &router, siteB, netip.Addr{}, ipv6("fe80::1", a, 8), nil, InnerAddr},
		{"inner IPv4-mapped source", &router, siteB, netip.Addr{}, ipv6("::ffff:198.51.100.2", a, 8), nil, InnerAddr},
		{"inner IPv4-compatible source", &router, siteB, netip.Addr{}, ipv6("::198.51.100.2", a, 8), nil, InnerAddr},
		{"inner not IPv6", &router, siteB, netip.Addr{}, ipv6(b, a, 8), func(p []byte) { p[20] = 0x45 }, Malformed},
		{"inner payload length too long", &router, siteB, netip.Addr{}, ipv6(b, a, 8), func(p []byte) { p[25]++ }, Malformed},
		{"inner payload length too short", &router, siteB, netip.Addr{}, ipv6(b, a, 8), func(p []byte) { p[25]-- }, Malformed},
		{"outer not protocol 41", &router, siteB, netip.Addr{}, ipv6(b, a, 8), func(p []byte) { p[9] = 4 }, Malformed},
		{"outer total length wrong", &router, siteB, netip.Addr{}, ipv6(b, a, 8), func(p []byte) { p[3]++ }, Malformed},
		{"outer fragment", &router, siteB, netip.Addr{}, ipv6(b, a, 8), func(p []byte) { p[6] = 0x20 }, Malformed},
		{"relay: 6to4 to native", &relay, siteA, netip.Addr{}, ipv6(a, native, 8), nil, 0},
		{"relay: native source", &relay, siteA, netip.Addr{}, ipv6(native, "2001:db8:9::1", 8), nil, RelaySrcNative},
		{"relay: source does not match outer", &relay, siteA, netip.Addr{}, ipv6(b, native, 8), nil, SrcNotOuter},
		{"relay: 6to4 destination", &relay, siteA, netip.Addr{}, ipv6(a, b, 8), nil, RelayDst6to4},
		{"relay: source embeds private", &relay, siteA, netip.Addr{}, ipv6("2002:c0a8:101::1", native, 8), nil, SrcEmbedded},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			to := c.to
			if !to.IsValid() {
				to = c.p.local
			}
			pkt := appendIPv4(nil, c.outer, to, c.inner)
			if c.mangle != nil {
				c.mangle(pkt)
			}
			off, got := c.p.decapsulate(pkt)
			if got != c.want {
				t.Fatalf("reason %v, want %v", got, c.want)
			}
			if got == 0 && !bytes.Equal(pkt[off:], c.inner) {
				t.Fatal("inner packet not where the offset says")
			}
		})
	}
	for _, short := range [][]byte{nil, {0x45}, appendIPv4(nil, siteB, siteA, nil)} {
		if _, r := router.decapsulate(short); r != Malformed {
			t.Errorf("short packet %x: %v", short, r)
		}
	}
}

func TestEncapsulate(t *testing.T) {
	router := newPolicy(Router, siteA, relay4, 1480, true)
	noRelay := newPolicy(Router, siteA, netip.Addr{}, 1480, true)
	relay := newPolicy(Relay, relay4, netip.Addr{}, 1480, true)
	const a = "2002:c000:202:1::10"
	cases := []struct {
		name   string
		p      *policy
		pkt    []byte
		outer  string
		action action
		want   Reason
	}{
		{"to a 6to4 site", &router, ipv6(a, "2002:c633:6402::1", 8), "198.51.100.2", send, 0},
		{"to native through the relay", &router, ipv6(a, native, 8), "203.0.113.2", send, 0},
		{"no relay", &noRelay, ipv6(a, native, 8), "", replyNoRoute, NoRelay},
		{"exactly the MTU", &router, ipv6(a, native, 1480-48), "203.0.113.2", send, 0},
		{"one byte over the MTU", &router, ipv6(a, native, 1480-47), "", replyTooBig, TooBig},
		{"source not ours", &router, ipv6("2002:c633:6402::5", native, 8), "", drop, OutSrc},
		{"native source at a router", &router, ipv6("2001:db8:5::5", native, 8), "", drop, OutSrc},
		{"destination embeds private", &router, ipv6(a, "2002:0a00:1::1", 8), "", drop, OutDst},
		{"destination in our own prefix", &router, ipv6(a, "2002:c000:202:9::1", 8), "", drop, OutDst},
		{"MLD from the kernel", &router, ipv6("fe80::1", "ff02::16", 8), "", drop, LinkScope},
		{"link-local destination", &router, ipv6(a, "fe80::2", 8), "", drop, LinkScope},
		{"not IPv6", &router, []byte{0x45, 0, 0, 20}, "", drop, TunMalformed},
		{"relay: native to 6to4", &relay, ipv6(native, a, 8), "192.0.2.2", send, 0},
		{"relay: its own address to 6to4", &relay, ipv6("2002:cb00:7102::1", a, 8), "192.0.2.2", send, 0},
		{"relay: another site's source", &relay, ipv6("2002:c633:6402::1", a, 8), "", drop, OutSrc},
		{"relay: native destination", &relay, ipv6("2002:cb00:7102::1", native, 8), "", drop, RelayOutNative},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			outer, act, r := c.p.encapsulate(c.pkt)
			if act != c.action || r != c.want {
				t.Fatalf("action %d reason %v, want %d %v", act, r, c.action, c.want)
			}
			if c.outer != "" && outer.String() != c.outer {
				t.Fatalf("outer destination %v, want %s", outer, c.outer)
			}
		})
	}
}

// TestRoundTrip encapsulates at one end and decapsulates at the other:
// what comes out is the packet that went in, in every direction of the
// three-party topology.
func TestRoundTrip(t *testing.T) {
	pa := newPolicy(Router, siteA, relay4, 1480, true)
	pb := newPolicy(Router, siteB, relay4, 1480, true)
	pr := newPolicy(Relay, relay4, netip.Addr{}, 1480, true)
	for _, c := range []struct {
		name     string
		from, to *policy
		pkt      []byte
	}{
		{"A to B", &pa, &pb, ipv6("2002:c000:202:1::10", "2002:c633:6402:1::20", 100)},
		{"B to A, full MTU", &pb, &pa, ipv6("2002:c633:6402::1", "2002:c000:202::1", 1480-48)},
		{"A to native via relay", &pa, &pr, ipv6("2002:c000:202::1", native, 0)},
		{"native to A via relay", &pr, &pa, ipv6(native, "2002:c000:202::1", 500)},
	} {
		t.Run(c.name, func(t *testing.T) {
			outer, act, r := c.from.encapsulate(c.pkt)
			if act != send {
				t.Fatalf("not sent: %v", r)
			}
			if outer != c.to.local {
				t.Fatalf("sent to %v, want %v", outer, c.to.local)
			}
			wire := appendIPv4(nil, c.from.local, outer, c.pkt)
			off, r := c.to.decapsulate(wire)
			if r != 0 {
				t.Fatalf("dropped at the far end: %v", r)
			}
			if !bytes.Equal(wire[off:], c.pkt) {
				t.Fatal("inner packet changed")
			}
		})
	}
}

func TestICMPv6Error(t *testing.T) {
	ours, _ := RouterAddr(siteA)
	big := ipv6("2002:c000:202:1::10", native, 1600)
	got := appendICMPv6Error(nil, ours, icmpTooBig, 0, 1480, big)
	if len(got) != minIPv6MTU {
		t.Fatalf("length %d, want %d (as much as fits in the minimum MTU)", len(got), minIPv6MTU)
	}
	if checkIPv6(got) != 0 {
		t.Fatal("not a well-formed IPv6 packet")
	}
	if netip.AddrFrom16([16]byte(got[8:24])) != ours || !bytes.Equal(got[24:40], big[8:24]) {
		t.Fatal("wrong addresses")
	}
	if got[40] != 2 || got[41] != 0 || binary.BigEndian.Uint32(got[44:]) != 1480 {
		t.Fatalf("header % x", got[40:48])
	}
	if !bytes.Equal(got[48:], big[:minIPv6MTU-48]) {
		t.Fatal("invoking packet not quoted from its start")
	}
	// A correct checksum sums (with the pseudo-header) to zero.
	if c := checksumICMPv6(got[8:24], got[24:40], got[40:]); c != 0 {
		t.Fatalf("checksum does not verify: %#x", c)
	}
	if mayAnswer(got) {
		t.Error("would answer an ICMPv6 error with an error")
	}
	if !mayAnswer(big) {
		t.Error("would not answer an echo request")
	}
	if mayAnswer(ipv6("::", native, 0)) {
		t.Error("would answer the unspecified address")
	}
	small := ipv6("2002:c000:202:1::10", native, 4)
	got = appendICMPv6Error(nil, ours, icmpUnreachable, 0, 0, small)
	if len(got) != 48+len(small) || !bytes.Equal(got[48:], small) {
		t.Fatal("small invoking packet not quoted whole")
	}
}

func FuzzDecapsulate(f *testing.F) {
	f.Add(appendIPv4(nil, siteB, siteA, ipv6("2002:c633:6402::1", "2002:c000:202::1", 8)))
	f.Add(appendIPv4(nil, relay4, siteA, ipv6(native, "2002:c000:202::1", 0)))
	f.Add(appendIPv4(nil, siteA, relay4, ipv6("2002:c000:202::1", native, 0)))
	f.Add([]byte{0x46, 0, 0, 20})
	pols := []policy{newPolicy(Router, siteA, relay4, 1480, true), newPolicy(Relay, relay4, netip.Addr{}, 1480, true)}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range pols {
			off, r := p.decapsulate(b)
			if r != 0 {
				continue
			}
			inner := b[off:]
			if checkIPv6(inner) != 0 {
				t.Fatal("accepted a malformed inner packet")
			}
			src := netip.AddrFrom4([4]byte(b[12:16]))
			if e, ok := embedded4(inner[8:24]); ok && e != src {
				t.Fatalf("accepted a 6to4 source %v from %v", e, src)
			}
			if p.mode == Router && !p.ours(inner[24:40]) {
				t.Fatal("accepted a packet not for our prefix")
			}
			// What a router accepts, re-encapsulated the other way, is
			// what the sender would have sent: the round trip holds.
			back := appendIPv4(nil, src, p.local, inner)
			if _, r2 := p.decapsulate(back); r2 != 0 {
				t.Fatalf("re-encapsulated packet refused: %v", r2)
			}
		}
	})
}

func FuzzEncapsulate(f *testing.F) {
	f.Add(ipv6("2002:c000:202:1::10", "2002:c633:6402::1", 8))
	f.Add(ipv6("2002:c000:202:1::10", native, 1500))
	f.Add(ipv6(native, "2002:c000:202::1", 8))
	pols := []policy{newPolicy(Router, siteA, relay4, 1480, true), newPolicy(Relay, relay4, netip.Addr{}, 1480, true)}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range pols {
			outer, act, r := p.encapsulate(b)
			switch act {
			case send:
				if r != 0 || !Usable(outer, true) || outer == p.local || len(b) > p.mtu {
					t.Fatalf("sends to %v (%v), %d bytes", outer, r, len(b))
				}
				// The far end (the router of that 6to4 site, with us as
				// its relay; or the relay) accepts what we send: the
				// round trip holds.
				far := newPolicy(Router, outer, p.local, 1480, true)
				if _, to6to4 := embedded4(b[24:40]); !to6to4 {
					far = newPolicy(Relay, outer, netip.Addr{}, 1480, true)
				}
				wire := appendIPv4(nil, p.local, outer, b)
				off, r := far.decapsulate(wire)
				if r != 0 || !bytes.Equal(wire[off:], b) {
					t.Fatalf("far end refuses what we send: %v", r)
				}
			case replyTooBig, replyNoRoute:
				if mayAnswer(b) {
					e := appendICMPv6Error(nil, netip.MustParseAddr("2002:c000:202::1"), icmpTooBig, 0, uint32(p.mtu), b)
					if checkIPv6(e) != 0 || len(e) > minIPv6MTU {
						t.Fatal("bad ICMPv6 error")
					}
				}
			case drop:
				if r == 0 {
					t.Fatal("dropped without a reason")
				}
			}
		}
	})
}

// The per-packet decisions allocate nothing.
func BenchmarkDecapsulate(b *testing.B) {
	p := newPolicy(Router, siteA, relay4, 1480, true)
	pkt := appendIPv4(nil, siteB, siteA, ipv6("2002:c633:6402::1", "2002:c000:202:1::10", 1400))
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, r := p.decapsulate(pkt); r != 0 {
			b.Fatal(r)
		}
	}
}

func BenchmarkEncapsulate(b *testing.B) {
	p := newPolicy(Router, siteA, relay4, 1480, true)
	pkt := ipv6("2002:c000:202:1::10", "2002:c633:6402::1", 1400)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, a, _ := p.encapsulate(pkt); a != send {
			b.Fatal(a)
		}
	}
}

func TestPerPacketAllocatesNothing(t *testing.T) {
	p := newPolicy(Router, siteA, relay4, 1480, true)
	in := appendIPv4(nil, siteB, siteA, ipv6("2002:c633:6402::1", "2002:c000:202:1::10", 100))
	out := ipv6("2002:c000:202:1::10", native, 100)
	if n := testing.AllocsPerRun(100, func() { p.decapsulate(in); p.encapsulate(out) }); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
}

// TestClassOfEdges checks the first and the last address of every block,
// and the public neighbours of the blocks that have them.
func TestClassOfEdges(t *testing.T) {
	blocks := map[string]Class{
		"0.0.0.0/8": Zero, "10.0.0.0/8": Private, "172.16.0.0/12": Private, "192.168.0.0/16": Private,
		"100.64.0.0/10": Shared, "127.0.0.0/8": Loopback, "169.254.0.0/16": LinkLocal,
		"224.0.0.0/4": Multicast, "240.0.0.0/5": Reserved, "255.255.255.0/25": Reserved,
		"192.0.0.0/24": Reserved, "198.18.0.0/15": Reserved,
		"192.0.2.0/24": Documentation, "198.51.100.0/24": Documentation, "203.0.113.0/24": Documentation,
	}
	for s, want := range blocks {
		p := netip.MustParsePrefix(s)
		b := p.Addr().As4()
		n := binary.BigEndian.Uint32(b[:]) | (1<<(32-p.Bits()) - 1)
		last := netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, n)))
		for _, a := range []netip.Addr{p.Addr(), last} {
			if got := ClassOf(a); got != want {
				t.Errorf("ClassOf(%v) = %v, want %v (%s)", a, got, want, s)
			}
		}
	}
	for _, a := range []string{"9.255.255.255", "11.0.0.0", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0",
		"126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "223.255.255.255", "192.0.1.255", "192.0.3.0",
		"198.17.255.255", "198.20.0.0", "198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0", "192.167.255.255", "192.169.0.0"} {
		if got := ClassOf(netip.MustParseAddr(a)); got != Public {
			t.Errorf("ClassOf(%s) = %v, want public", a, got)
		}
	}
	if ClassOf(netip.MustParseAddr("255.255.255.255")) != Broadcast {
		t.Error("255.255.255.255 is not broadcast")
	}
}
