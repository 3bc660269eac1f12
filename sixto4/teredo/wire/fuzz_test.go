package wire

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func seeds(f *testing.F) {
	rs, _ := NewQualificationRS([8]byte{1}, [8]byte{2, 3, 4}, false).Append(nil)
	ra, _ := testRA(f).Append(nil)
	bub, _ := Packet{Origin: netip.MustParseAddrPort("192.0.2.1:3544"), IPv6: Bubble(netip.MustParseAddr("2001::1"), netip.MustParseAddr("2001::2"))}.Append(nil)
	for _, b := range [][]byte{rs, ra, bub, nil, {0, 1}, {0, 0}} {
		f.Add(b)
	}
}

// roundTrip checks that what parse accepted re-encodes to something parse
// reads back the same.
func roundTrip[T any](t *testing.T, b []byte, parse func([]byte) (T, error), appendTo func(T) ([]byte, error)) {
	v, err := parse(b)
	if err != nil {
		return
	}
	wire, err := appendTo(v)
	if err != nil {
		t.Fatalf("accepted input cannot be re-encoded: %v", err)
	}
	back, err := parse(wire)
	if err != nil {
		t.Fatalf("re-encoded input refused: %v", err)
	}
	if diff := cmp.Diff(v, back, opts...); diff != "" {
		t.Fatalf("round trip changed it (-first +second):\n%s", diff)
	}
}

func FuzzParsePacket(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, ParsePacket, func(p Packet) ([]byte, error) { return p.Append(nil) })
	})
}

func FuzzParseIPv6(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, ParseIPv6, func(p IPv6) ([]byte, error) { return p.Append(nil) })
	})
}

func FuzzParseQualificationRS(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, ParseQualificationRS, func(q QualificationRS) ([]byte, error) { return q.Append(nil) })
	})
}

func FuzzParseQualificationRA(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, ParseQualificationRA, func(q QualificationRA) ([]byte, error) { return q.Append(nil) })
	})
}

func FuzzParseRouterMessages(f *testing.F) {
	ra, _ := testRA(f).RA.Append(nil)
	rs, _ := RouterSolicitation{Options: []Option{{Type: 1, Data: make([]byte, 6)}}}.Append(nil)
	f.Add(ra)
	f.Add(rs)
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, ParseRouterSolicitation, func(m RouterSolicitation) ([]byte, error) { return m.Append(nil) })
		roundTrip(t, b, ParseRouterAdvertisement, func(m RouterAdvertisement) ([]byte, error) { return m.Append(nil) })
		roundTrip(t, b, func(b []byte) (PrefixInformation, error) {
			if len(b) < 1 {
				return PrefixInformation{}, ErrMalformed
			}
			return ParsePrefixInformation(Option{Type: b[0], Data: b[1:]})
		}, func(p PrefixInformation) ([]byte, error) {
			o, err := p.Option()
			return append([]byte{o.Type}, o.Data...), err
		})
	})
}

func FuzzParseAddress(f *testing.F) {
	f.Add([]byte(netip.MustParseAddr("2001:0:4136:e378:8000:63bf:3fff:fdd2").AsSlice()))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 16 {
			return
		}
		ip := netip.AddrFrom16([16]byte(b))
		a, err := ParseAddress(ip)
		if err != nil {
			return
		}
		back, err := a.IP()
		if err != nil || back != ip {
			t.Fatalf("%v decoded to %+v, encoded back to %v, %v", ip, a, back, err)
		}
	})
}
