package dhcp6

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	xid     = [3]byte{0xa1, 0xb2, 0xc3}
	iaid    = [4]byte{0, 0, 0, 1}
	cid     = DUIDLL(net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42})
	llt     = DUID{0, 1, 0, 1, 0x30, 0xc2, 0xa1, 0xb0, 0x02, 0, 0, 0, 0, 0x01}
	en      = DUID{0, 2, 0, 0, 0x09, 0xbf, 0xde, 0xad, 0xbe, 0xef}
	uuid    = DUID{0, 4, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
	s       = time.Second
	addr    = netip.MustParseAddr("2001:db8:0:1::100")
	prefix  = netip.MustParsePrefix("2001:db8:1::/56")
	heldIAs = []IANA{{IAID: iaid, Addrs: []IAAddr{{Addr: addr}}}}
	heldPD  = []IAPD{{IAID: iaid, Prefixes: []IAPrefix{{Prefix: prefix}}}}
	oro     = []OptionCode{OptDNSServers, OptSolMaxRT}
)

// golden are the messages in testdata/golden, encoded by an independent
// implementation, github.com/insomniacslk/dhcp's dhcpv6 (its generator,
// golden_gen_test.go, is in commit 174b382; the dependency is gone since), as
// our codec must read and write them.
var golden = map[string]Message{
	"solicit": {Type: Solicit, TransactionID: xid, ClientID: cid,
		IANA: []IANA{{IAID: iaid}},
		IAPD: []IAPD{{IAID: iaid, Prefixes: []IAPrefix{{Prefix: netip.MustParsePrefix("::/56")}}}},
		ORO:  oro},
	"advertise": {Type: Advertise, TransactionID: xid, ClientID: cid, ServerID: llt,
		IANA:       []IANA{{IAID: iaid, T1: 1800 * s, T2: 2880 * s, Addrs: []IAAddr{{Addr: addr, Preferred: 3600 * s, Valid: 7200 * s}}}},
		IAPD:       []IAPD{{IAID: iaid, T1: 1800 * s, T2: 2880 * s, Prefixes: []IAPrefix{{Prefix: prefix, Preferred: 3600 * s, Valid: 7200 * s}}}},
		Preference: 255,
		DNS:        []netip.Addr{netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("2001:db8::54")},
		SolMaxRT:   3600 * s},
	"reply-noprefix": {Type: Reply, TransactionID: xid, ClientID: cid, ServerID: en,
		IANA:   []IANA{{IAID: iaid, Status: &Status{NoAddrsAvail, "no addresses"}}},
		IAPD:   []IAPD{{IAID: iaid, Status: &Status{NoPrefixAvail, "no prefixes"}}},
		Status: &Status{Success, "ok"}},
	"reply-rapid": {Type: Reply, TransactionID: xid, ClientID: cid, ServerID: uuid,
		IAPD: []IAPD{{IAID: iaid, T1: Infinity, T2: Infinity, Prefixes: []IAPrefix{{
			Prefix: netip.MustParsePrefix("2001:db8:ff00::/40"), Preferred: Infinity, Valid: Infinity,
			Status: &Status{Success, "yours"}}}}},
		RapidCommit: true,
		Other:       []Option{{65000, []byte("kept")}}},
	"request": {Type: Request, TransactionID: xid, ClientID: cid, ServerID: llt, IANA: heldIAs, IAPD: heldPD, ORO: oro, ElapsedTime: 1500 * time.Millisecond},
	"renew":   {Type: Renew, TransactionID: xid, ClientID: cid, ServerID: llt, IANA: heldIAs, IAPD: heldPD, ORO: oro, ElapsedTime: 1500 * time.Millisecond},
	"rebind":  {Type: Rebind, TransactionID: xid, ClientID: cid, IANA: heldIAs, IAPD: heldPD, ORO: oro, ElapsedTime: 1500 * time.Millisecond},
	"release": {Type: Release, TransactionID: xid, ClientID: cid, ServerID: llt, IANA: heldIAs, IAPD: heldPD, ElapsedTime: 1500 * time.Millisecond},
}

var cmpOpts = cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}

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

// TestDhcpd reads what ISC dhcpd sent in the lab (testdata/dhcpd), in
// its option order, not ours.
func TestDhcpd(t *testing.T) {
	clientID := DUID{0, 3, 0, 1, 0x9a, 0xcf, 0xb5, 0xd1, 0x57, 0x35}
	serverID := DUID{0, 1, 0, 1, 0x32, 0x9b, 0x11, 0x50, 0x6a, 0x45, 0x99, 0x3d, 0x9d, 0x01}
	grant := func(typ MessageType, xid [3]byte) Message {
		return Message{Type: typ, TransactionID: xid, ClientID: clientID, ServerID: serverID,
			IANA: []IANA{{IAID: iaid, Addrs: []IAAddr{{Addr: netip.MustParseAddr("2001:db8:0:1::188"), Preferred: 4 * s, Valid: 6 * s}}}},
			IAPD: []IAPD{{IAID: iaid, Prefixes: []IAPrefix{{Prefix: prefix, Preferred: 4 * s, Valid: 6 * s}}}}}
	}
	for name, want := range map[string]Message{
		"advertise": grant(Advertise, [3]byte{0x20, 0xb6, 0x6e}),
		"reply":     grant(Reply, [3]byte{0x20, 0x72, 0x53}),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/dhcpd", name+".bin"))
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
		})
	}
	// What our client sent dhcpd: each parses, as the type its name says.
	for _, typ := range []MessageType{Solicit, Request, Renew, Rebind, Release} {
		b, err := os.ReadFile(filepath.Join("testdata/dhcpd", strings.ToLower(typ.String())+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		if m, err := ParseMessage(b); err != nil || m.Type != typ || len(m.IAPD) != 1 || m.ClientID.Type() != DUIDTypeLL {
			t.Errorf("%v: %+v, %v", typ, m, err)
		}
	}
}

func TestDUIDLL(t *testing.T) {
	d := DUIDLL(net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42})
	if diff := cmp.Diff(DUID{0, 3, 0, 1, 2, 0, 0, 0, 0, 0x42}, d); diff != "" {
		t.Error(diff)
	}
	if d.Type() != DUIDTypeLL {
		t.Errorf("type %d", d.Type())
	}
}

func TestMalformed(t *testing.T) {
	hdr := []byte{byte(Reply), 1, 2, 3}
	opt := func(code uint16, data ...byte) []byte {
		return append([]byte{byte(code >> 8), byte(code), byte(len(data) >> 8), byte(len(data))}, data...)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	ia := func(code uint16, sub ...byte) []byte { return opt(code, append(make([]byte, 12), sub...)...) }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"short header", []byte{7, 1, 2}},
		{"type 0", []byte{0, 1, 2, 3}},
		{"relay-forw", []byte{12, 1, 2, 3}},
		{"truncated option header", cat(hdr, []byte{0, 1, 0})},
		{"option past the end", cat(hdr, []byte{0, 1, 0, 10, 0, 3, 0, 1})},
		{"DUID of 2 octets", cat(hdr, opt(1, 0, 3))},
		{"DUID of 131 octets", cat(hdr, opt(2, make([]byte, 131)...))},
		{"two client IDs", cat(hdr, opt(1, 0, 3, 0, 1, 2), opt(1, 0, 3, 0, 1, 2))},
		{"two statuses", cat(hdr, opt(13, 0, 0), opt(13, 0, 1))},
		{"status of 1 octet", cat(hdr, opt(13, 0))},
		{"preference of 2 octets", cat(hdr, opt(7, 0, 1))},
		{"elapsed of 1 octet", cat(hdr, opt(8, 1))},
		{"rapid commit with data", cat(hdr, opt(14, 1))},
		{"SOL_MAX_RT of 2 octets", cat(hdr, opt(82, 0, 60))},
		{"odd ORO", cat(hdr, opt(6, 0, 23, 0))},
		{"DNS of 15 octets", cat(hdr, opt(23, make([]byte, 15)...))},
		{"IA_NA of 11 octets", cat(hdr, opt(3, make([]byte, 11)...))},
		{"IA_PD of 11 octets", cat(hdr, opt(25, make([]byte, 11)...))},
		{"IA address of 23 octets", cat(hdr, ia(3, opt(5, make([]byte, 23)...)...))},
		{"IA prefix of 24 octets", cat(hdr, ia(25, opt(26, make([]byte, 24)...)...))},
		{"prefix length 129", cat(hdr, ia(25, opt(26, append(make([]byte, 8), append([]byte{129}, make([]byte, 16)...)...)...)...))},
		{"IA sub-option past the end", cat(hdr, ia(25, 0, 13, 0, 5, 0))},
		{"two statuses in an IA", cat(hdr, ia(25, cat(opt(13, 0, 6), opt(13, 0, 6))...))},
		{"bad status in an IA prefix", cat(hdr, ia(25, opt(26, append(make([]byte, 25), opt(13, 0)...)...)...))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseMessage(tc.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
		})
	}
}

func TestAppendRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
	}{
		{"type 0", Message{}},
		{"short DUID", Message{Type: Solicit, ClientID: DUID{0, 3}}},
		{"IPv4 address", Message{Type: Request, IANA: []IANA{{Addrs: []IAAddr{{Addr: netip.MustParseAddr("192.0.2.1")}}}}}},
		{"invalid prefix", Message{Type: Request, IAPD: []IAPD{{Prefixes: []IAPrefix{{}}}}}},
		{"lifetime beyond infinity", Message{Type: Reply, IAPD: []IAPD{{T1: Infinity + s}}}},
		{"negative T2", Message{Type: Reply, IANA: []IANA{{T2: -s}}}},
		{"known option kept raw", Message{Type: Reply, Other: []Option{{OptServerID, []byte{0, 3, 1}}}}},
		{"status kept raw in an IA", Message{Type: Reply, IAPD: []IAPD{{Other: []Option{{OptStatusCode, []byte{0, 0}}}}}}},
		{"option too long", Message{Type: Reply, Other: []Option{{999, make([]byte, 0x10000)}}}},
		{"IPv4 DNS server", Message{Type: Reply, DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.m.Append(nil); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
		})
	}
}

// TestElapsedTime: always in client messages, even 0 (section 21.9),
// saturated at 0xffff hundredths.
func TestElapsedTime(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		want []byte
	}{
		{Message{Type: Solicit}, []byte{1, 0, 0, 0, 0, 8, 0, 2, 0, 0}},
		{Message{Type: Rebind, ElapsedTime: time.Hour}, []byte{6, 0, 0, 0, 0, 8, 0, 2, 0xff, 0xff}},
		{Message{Type: Reply}, []byte{7, 0, 0, 0}},
	} {
		b, err := tc.m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, b); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tc.m.Type, diff)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.bin")
	captured, _ := filepath.Glob("testdata/dhcpd/*.bin")
	for _, p := range append(files, captured...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
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
