package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestReplyOptions(t *testing.T) {
	routes := []Route{{Dest: netip.MustParsePrefix("10.8.0.0/16"), Gateway: ip("192.168.1.254")}}
	full := func(c *CoreConfig) { c.MTU = 1400; c.Routes = routes }
	wantRoutes := []byte{16, 10, 8, 192, 168, 1, 254, 0, 192, 168, 1, 1}
	lease := map[uint8][]byte{
		51: {0, 0, 0xa8, 0xc0}, // 43200 s
		58: {0, 0, 0x54, 0x60}, // T1 21600 s
		59: {0, 0, 0x93, 0xa8}, // T2 37800 s
	}
	subnet := map[uint8][]byte{
		1:  {255, 255, 255, 0},
		3:  {192, 168, 1, 1},
		6:  {192, 168, 1, 1},
		15: []byte("lan"),
		28: {192, 168, 1, 255},
	}
	merge := func(ms ...map[uint8][]byte) map[uint8][]byte {
		out := map[uint8][]byte{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	offer := map[uint8][]byte{53: {2}, 54: {192, 168, 1, 1}}
	ack := map[uint8][]byte{53: {5}, 54: {192, 168, 1, 1}}
	tests := []struct {
		name string
		cfg  func(*CoreConfig)
		k    *client
		msg  func(k *client) *dhcpv4.DHCPv4
		want map[uint8][]byte
	}{
		{
			name: "no request list: everything configured",
			cfg:  full,
			k:    newClient("02:00:00:00:00:01"),
			want: merge(offer, lease, subnet, map[uint8][]byte{26: {0x05, 0x78}, 121: wantRoutes}),
		},
		{
			name: "request list without 26 and 121: the subnet's parameters only",
			cfg:  full,
			k:    &client{mac: mac("02:00:00:00:00:01"), prl: []uint8{1, 3, 6, 42, 44}},
			want: merge(offer, lease, subnet),
		},
		{
			name: "request list with 121: routes with the default route, and the router too",
			cfg:  full,
			k:    &client{mac: mac("02:00:00:00:00:01"), prl: []uint8{121, 26}},
			want: merge(offer, lease, subnet, map[uint8][]byte{26: {0x05, 0x78}, 121: wantRoutes}),
		},
		{
			name: "empty request list",
			k:    &client{mac: mac("02:00:00:00:00:01"), prl: []uint8{}},
			want: merge(offer, lease, subnet),
		},
		{
			name: "client id (RFC 6842) and relay information (RFC 3046) copied",
			k: &client{mac: mac("02:00:00:00:00:01"), id: []byte{1, 2, 0, 0, 0, 0, 1}, giaddr: ip("192.168.1.3"),
				opts: []dhcpv4.Option{dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 3, 'e', 't', 'h'})}},
			want: merge(offer, lease, subnet, map[uint8][]byte{61: {1, 2, 0, 0, 0, 0, 1}, 82: {1, 3, 'e', 't', 'h'}}),
		},
		{
			name: "FQDN: S and E set by the client; we do no updates",
			k: &client{mac: mac("02:00:00:00:00:01"),
				opts: []dhcpv4.Option{dhcpv4.OptGeneric(dhcpv4.OptionFQDN, append([]byte{0x05, 0, 0}, 4, 'h', 'o', 's', 't', 3, 'l', 'a', 'n', 0))}},
			want: merge(offer, lease, subnet, map[uint8][]byte{81: {0x0e, 255, 255, 4, 'h', 'o', 's', 't', 3, 'l', 'a', 'n'}}),
		},
		{
			name: "FQDN in the deprecated ASCII form",
			k: &client{mac: mac("02:00:00:00:00:01"),
				opts: []dhcpv4.Option{dhcpv4.OptGeneric(dhcpv4.OptionFQDN, []byte{0, 0, 0, 'p', 'c'})}},
			want: merge(offer, lease, subnet, map[uint8][]byte{81: {0x08, 255, 255, 'p', 'c'}}),
		},
		{
			name: "shorter lease asked for",
			k: &client{mac: mac("02:00:00:00:00:01"),
				opts: []dhcpv4.Option{dhcpv4.OptIPAddressLeaseTime(time.Hour)}},
			want: merge(offer, subnet, map[uint8][]byte{51: {0, 0, 0x0e, 0x10}, 58: {0, 0, 0x07, 0x08}, 59: {0, 0, 0x0c, 0x4e}}),
		},
		{
			name: "lease under MinLeaseTime asked for",
			k: &client{mac: mac("02:00:00:00:00:01"),
				opts: []dhcpv4.Option{dhcpv4.OptIPAddressLeaseTime(MinLeaseTime / 2)}},
			want: merge(offer, subnet, map[uint8][]byte{
				51: durationSeconds(MinLeaseTime), 58: durationSeconds(MinLeaseTime / 2), 59: durationSeconds(MinLeaseTime / 8 * 7)}),
		},
		{
			name: "INFORM: no lease options",
			cfg:  full,
			k:    newClient("02:00:00:00:00:01"),
			msg:  func(k *client) *dhcpv4.DHCPv4 { return k.inform(ip("192.168.1.77")) },
			want: merge(ack, subnet, map[uint8][]byte{26: {0x05, 0x78}, 121: wantRoutes}),
		},
		{
			name: "NAK: message and client id only",
			k:    &client{mac: mac("02:00:00:00:00:01"), id: []byte{1, 2}, prl: []uint8{1, 3}},
			msg:  func(k *client) *dhcpv4.DHCPv4 { return k.initReboot(ip("10.0.0.1")) },
			want: map[uint8][]byte{53: {6}, 54: {192, 168, 1, 1}, 56: []byte("address is not on this network"), 61: {1, 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			c := newCore(t, cfg)
			msg := tt.k.discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{192, 168, 1, 50})))
			if tt.msg != nil {
				msg = tt.msg(tt.k)
			}
			a := handle(c, msg, t0)
			if a.Probe.IsValid() {
				c.ProbeDone(a.Probe, false, t0)
				a = handle(c, msg, t0)
			}
			if a.Reply == nil {
				t.Fatalf("no reply: %+v", summarize(a))
			}
			got := map[uint8][]byte(a.Reply.Options)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got)\n%s", diff)
			}
			// What dhcpv4 read of our bytes, it writes and reads again the same.
			back, err := dhcpv4.FromBytes(a.Reply.ToBytes())
			if err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if diff := cmp.Diff(got, map[uint8][]byte(back.Options)); diff != "" {
				t.Errorf("options after a round trip (-sent +parsed)\n%s", diff)
			}
		})
	}
}

// TestOptionsBudget checks that a reply fits the client's maximum message
// size and that, when options must be left out, the client's order decides.
func TestOptionsBudget(t *testing.T) {
	cfg := testConfig()
	for i := range 25 { // 25 × 8 bytes of routes + the default route: 207 bytes on the wire
		cfg.Routes = append(cfg.Routes, Route{Dest: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 24), Gateway: ip("192.168.1.254")})
	}
	cfg.Domain = strings.Repeat("a", 60) + "." + strings.Repeat("b", 39) // 100 bytes: 102 on the wire
	tests := []struct {
		name    string
		prl     []uint8
		maxSize uint16
		present []uint8
		absent  []uint8
	}{
		{"routes first: the domain does not fit", []uint8{121, 15}, 0, []uint8{1, 3, 6, 28, 121}, []uint8{15}},
		{"domain first: the routes do not fit", []uint8{15, 121}, 0, []uint8{1, 3, 6, 15, 28}, []uint8{121}},
		{"a larger maximum message size fits both", []uint8{121, 15}, 1500, []uint8{1, 3, 6, 15, 28, 121}, nil},
		{"a maximum under 576 counts as 576", []uint8{121, 15}, 300, []uint8{121}, []uint8{15}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCore(t, cfg)
			k := &client{mac: mac("02:00:00:00:00:01"), prl: tt.prl}
			if tt.maxSize != 0 {
				k.opts = []dhcpv4.Option{dhcpv4.OptMaxMessageSize(tt.maxSize)}
			}
			a := handle(c, k.inform(ip("192.168.1.77")), t0)
			for _, code := range tt.present {
				if !a.Reply.Options.Has(dhcpv4.GenericOptionCode(code)) {
					t.Errorf("option %d missing", code)
				}
			}
			for _, code := range tt.absent {
				if a.Reply.Options.Has(dhcpv4.GenericOptionCode(code)) {
					t.Errorf("option %d sent", code)
				}
			}
			limit := max(int(tt.maxSize), 576) - 28
			wire, _ := a.Action.Reply.Append(nil)
			if n := len(bytes.TrimRight(wire, "\x00")); n > limit {
				t.Errorf("reply of %d bytes, client accepts %d", n, limit)
			}
		})
	}
}

func TestEncodeRoutes(t *testing.T) {
	gw := ip("192.168.1.1")
	// The destination encodings of RFC 3442's table.
	tests := []struct {
		dest string
		want []byte
	}{
		{"0.0.0.0/0", []byte{0}},
		{"10.0.0.0/8", []byte{8, 10}},
		{"10.17.0.0/16", []byte{16, 10, 17}},
		{"10.27.129.0/24", []byte{24, 10, 27, 129}},
		{"10.229.0.128/25", []byte{25, 10, 229, 0, 128}},
		{"10.198.122.47/32", []byte{32, 10, 198, 122, 47}},
	}
	for _, tt := range tests {
		t.Run(tt.dest, func(t *testing.T) {
			r := Route{Dest: netip.MustParsePrefix(tt.dest), Gateway: gw}
			got := encodeRoutes([]Route{r})
			if diff := cmp.Diff(append(tt.want, 192, 168, 1, 1), got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			var parsed dhcpv4.Routes
			if err := parsed.FromBytes(got); err != nil || len(parsed) != 1 || parsed[0].Dest.String() != tt.dest {
				t.Errorf("dhcpv4 parses it as %v, %v", parsed, err)
			}
		})
	}
}

func TestParseFQDN(t *testing.T) {
	tests := []struct {
		name      string
		in        []byte
		wantFlags uint8
		wantName  string
		wantOK    bool
	}{
		{"wire, fully qualified", []byte{0x05, 0, 0, 2, 'p', 'c', 3, 'l', 'a', 'n', 0}, 0x05, "pc.lan", true},
		{"wire, partial", []byte{0x04, 0, 0, 2, 'p', 'c'}, 0x04, "pc", true},
		{"ascii", []byte{0x01, 0, 0, 'p', 'c', '.', 'l', 'a', 'n', '.'}, 0x01, "pc.lan", true},
		{"flags only", []byte{0x04, 0, 0}, 0x04, "", true},
		{"too short", []byte{0x04, 0}, 0, "", false},
		{"label past the end", []byte{0x04, 0, 0, 9, 'p', 'c'}, 0, "", false},
		{"label over 63", append([]byte{0x04, 0, 0, 64}, bytes.Repeat([]byte{'a'}, 64)...), 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags, name, ok := parseFQDN(tt.in)
			if flags != tt.wantFlags || name != tt.wantName || ok != tt.wantOK {
				t.Errorf("parseFQDN = %#x %q %v, want %#x %q %v", flags, name, ok, tt.wantFlags, tt.wantName, tt.wantOK)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"laptop", "laptop"},
		{"laptop\x00\x00", "laptop"},
		{" spaced ", "spaced"},
		{"Jürgen's iPhone", "Jürgen's iPhone"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"ctl\x01\x1b[31m", "ctl[31m"},
		{strings.Repeat("é", 200), strings.Repeat("é", 127)}, // 2 bytes each: cut on a rune boundary
	}
	for _, tt := range tests {
		if got := cleanName(tt.in); got != tt.want {
			t.Errorf("cleanName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEncodedLen(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{0, 2}, {1, 3}, {255, 257}, {256, 260}, {510, 514}, {511, 517}} {
		d := &dhcpv4.DHCPv4{Options: dhcpv4.Options{200: bytes.Repeat([]byte{1}, tt.n)}}
		wire := d.ToBytes()
		// header 236 + cookie 4 + options + End, padded to 300
		if got := encodedLen(tt.n); got != tt.want || (len(wire) > 300 && len(wire)-241 != got) {
			t.Errorf("encodedLen(%d) = %d, want %d (wire %d)", tt.n, got, tt.want, len(wire)-241)
		}
	}
	for _, size := range []int{0, 300, 576} {
		if got := optionsBudget(size); got != 307 {
			t.Errorf("optionsBudget(%d) = %d, want 307", size, got)
		}
	}
}
