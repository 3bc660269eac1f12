package nat44

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRule(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Rule
		bad  bool
	}{
		{in: "allow 1024-65535 192.168.1.0/24 1024-65535", want: Rule{true, PortRange{1024, 65535}, netip.MustParsePrefix("192.168.1.0/24"), PortRange{1024, 65535}}},
		{in: "deny 22 192.168.1.10 22", want: Rule{false, PortRange{22, 22}, netip.MustParsePrefix("192.168.1.10/32"), PortRange{22, 22}}},
		{in: "allow 0-65535 0.0.0.0/0 0-65535", want: Rule{true, PortRange{0, 65535}, netip.MustParsePrefix("0.0.0.0/0"), PortRange{0, 65535}}},
		{in: "permit 1 1.2.3.4 1", bad: true},
		{in: "allow 2-1 1.2.3.4 1", bad: true},
		{in: "allow 1 ::1 1", bad: true},
		{in: "allow 1 1.2.3.4", bad: true},
		{in: "allow 70000 1.2.3.4 1", bad: true},
	} {
		got, err := ParseRule(tt.in)
		if (err != nil) != tt.bad {
			t.Errorf("ParseRule(%q) error %v, want error %v", tt.in, err, tt.bad)
			continue
		}
		if !tt.bad && got != tt.want {
			t.Errorf("ParseRule(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if !tt.bad {
			if back, err := ParseRule(got.String()); err != nil || back != got {
				t.Errorf("round trip of %v: %v, %v", got, back, err)
			}
		}
	}
}

// TestAllowedAgainstModel checks the interval arithmetic of allowed
// against deciding each port by the rules, first match wins.
func TestAllowedAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	in := netip.MustParseAddrPort("192.168.1.10:5000")
	for range 200 {
		var p Policy
		for range r.IntN(5) + 1 {
			lo := uint16(r.IntN(65536))
			hi := lo + uint16(r.IntN(int(65535-lo)+1))
			rule := Rule{Allow: r.IntN(2) == 0, External: PortRange{lo, hi}, Internal: netip.MustParsePrefix("192.168.1.0/24"), InternalPorts: PortRange{1, 65535}}
			if r.IntN(4) == 0 {
				rule.Internal = netip.MustParsePrefix("10.0.0.0/8") // does not match
			}
			p.Rules = append(p.Rules, rule)
		}
		got := p.allowed(in)
		for port := 0; port < 65536; port += 1 + r.IntN(50) {
			want := false
			for _, rule := range p.Rules {
				if rule.Internal.Contains(in.Addr()) && rule.External.Contains(uint16(port)) {
					want = rule.Allow
					break
				}
			}
			has := false
			for _, a := range got {
				has = has || a.Contains(uint16(port))
			}
			if has != want {
				t.Fatalf("rules %v: port %d allowed %v, want %v (ranges %v)", p.Rules, port, has, want, got)
			}
		}
	}
}

// TestNearestAgainstModel checks the bitmap search against a scan.
func TestNearestAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tb := NewTable()
	taken := map[uint16]bool{}
	for range 3000 {
		p := uint16(r.IntN(65535) + 1)
		if r.IntN(3) == 0 {
			p = uint16(30000 + r.IntN(2000)) // a dense block
		}
		if taken[p] {
			continue
		}
		taken[p] = true
		if err := tb.Put(Mapping{Proto: UDP, ExternalPort: p, Internal: netip.MustParseAddrPort("192.168.1.10:1")}, t0); err != nil {
			t.Fatal(err)
		}
	}
	reserved := func(p uint16) bool { return p%97 == 0 }
	for range 2000 {
		want := uint16(r.IntN(65535) + 1)
		lo := uint16(r.IntN(int(want)) + 1)
		hi := want + uint16(r.IntN(int(65535-want)+1))
		if r.IntN(5) == 0 {
			want, lo, hi = uint16(31000), 30000, 31999
		}
		got, ok := tb.Nearest(UDP, want, lo, hi, reserved)
		best, found := 0, false
		for d := 0; d <= 65535 && !found; d++ {
			for _, c := range []int{int(want) + d, int(want) - d} {
				if c >= int(lo) && c <= int(hi) && !taken[uint16(c)] && !reserved(uint16(c)) {
					best, found = c, true
					break
				}
			}
		}
		if ok != found || (ok && int(got) != best) {
			t.Fatalf("Nearest(%d, [%d, %d]) = %d, %v; want %d, %v", want, lo, hi, got, ok, best, found)
		}
	}
	if diff := cmp.Diff(len(taken), tb.Len()); diff != "" {
		t.Fatal(diff)
	}
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"allow 1024-65535 192.168.1.0/24 1024-65535", "deny 22 192.168.1.10 22", "allow 0-65535 0.0.0.0/0 0-65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			return
		}
		back, err := ParseRule(r.String())
		if err != nil || back != r {
			t.Fatalf("round trip of %q: %v -> %v, %v", s, r, back, err)
		}
	})
}
