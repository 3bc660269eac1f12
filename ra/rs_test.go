package ra

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"

	"gateway/ra/ndpwire"
)

var hostLL = netip.MustParseAddr("fe80::2")

func marshalRS(t testing.TB, opts ...ndp.Option) []byte {
	t.Helper()
	b, err := ndp.MarshalMessage(&ndp.RouterSolicitation{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRS(t *testing.T) {
	slla := &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}
	good := marshalRS(t, slla)
	withCode := append([]byte(nil), good...)
	withCode[1] = 1
	zeroLen := append(marshalRS(t), 1, 0, 0, 0, 0, 0, 0, 0)
	tests := []struct {
		name    string
		b       []byte
		src     netip.Addr
		hop     int
		want    solicitation
		wantErr bool
	}{
		{name: "with source link-layer address", b: good, src: hostLL, hop: 255,
			want: solicitation{Source: hostLL, LinkAddr: mac, Options: []ndpwire.Option{ndpwire.SourceLinkLayerAddress{Addr: mac}}}},
		{name: "from ::, no options", b: marshalRS(t), src: netip.IPv6Unspecified(), hop: 255,
			want: solicitation{Source: netip.IPv6Unspecified()}},
		{name: "hop limit not 255 (off-link)", b: good, src: hostLL, hop: 64, wantErr: true},
		{name: "no hop limit known", b: good, src: hostLL, hop: -1, wantErr: true},
		{name: "code 1", b: withCode, src: hostLL, hop: 255, wantErr: true},
		{name: "shorter than 8 bytes", b: good[:7], src: hostLL, hop: 255, wantErr: true},
		{name: "not a solicitation", b: append([]byte{134}, good[1:]...), src: hostLL, hop: 255, wantErr: true},
		{name: "link-layer address from ::", b: good, src: netip.IPv6Unspecified(), hop: 255, wantErr: true},
		{name: "option of length 0", b: zeroLen, src: hostLL, hop: 255, wantErr: true},
		{name: "option running past the end", b: append(marshalRS(t), 1, 2, 0, 0), src: hostLL, hop: 255, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRS(tt.b, tt.src, tt.hop)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseRS: whatever parseRS accepts re-encodes to a solicitation that
// parses to the same value.
func FuzzParseRS(f *testing.F) {
	f.Add(marshalRS(f, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}), false)
	f.Add(marshalRS(f), true)
	f.Add(marshalRS(f, &ndp.RawOption{Type: 200, Length: 1, Value: make([]byte, 6)}, ndp.NewNonce()), false)
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 0}, false)
	f.Fuzz(func(t *testing.T, b []byte, unspecified bool) {
		src := hostLL
		if unspecified {
			src = netip.IPv6Unspecified()
		}
		rs, err := parseRS(b, src, 255)
		if err != nil {
			return
		}
		wire, err := ndpwire.RouterSolicitation{Options: rs.Options}.Append(nil)
		if err != nil {
			t.Fatalf("accepted solicitation cannot be re-encoded: %v", err)
		}
		back, err := parseRS(wire, src, 255)
		if err != nil {
			t.Fatalf("re-encoded solicitation refused: %v", err)
		}
		if diff := cmp.Diff(rs, back, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("round trip changed the solicitation (-first +second):\n%s", diff)
		}
	})
}

func TestLimiter(t *testing.T) {
	l := newLimiter()
	if v := l.decide(netip.IPv6Unspecified(), t0); v != answerMulticast {
		t.Errorf("from ::: %v, want multicast", v)
	}
	for i := range sourceBurst {
		if v := l.decide(hostLL, t0); v != answerUnicast {
			t.Errorf("RS %d from a host at once: %v, want unicast", i, v)
		}
	}
	if v := l.decide(hostLL, t0); v != dropRS {
		t.Errorf("RS %d at once: %v, want drop", sourceBurst+1, v)
	}
	if v := l.decide(hostLL, t0.Add(sourceRefill/2)); v != dropRS {
		t.Errorf("again within %v: %v, want drop", sourceRefill, v)
	}
	if v := l.decide(hostLL, t0.Add(sourceRefill)); v != answerUnicast {
		t.Errorf("again after %v: %v, want unicast", sourceRefill, v)
	}
	// A flood from many sources: the bucket's burst by unicast, the rest by multicast.
	l = newLimiter()
	uni := 0
	for i := range 5000 {
		src := netip.AddrFrom16([16]byte{0xfe, 0x80, 14: byte(i >> 8), 15: byte(i)})
		if l.decide(src, t0.Add(time.Duration(i)*time.Millisecond)) == answerUnicast {
			uni++
		}
	}
	if want := unicastBurst + 5*unicastPerSec; uni > want+1 || uni < want-1 {
		t.Errorf("%d unicast answers to 5000 sources in 5 s, want %d", uni, want)
	}
	if len(l.sources) > maxSources {
		t.Errorf("limiter remembers %d sources", len(l.sources))
	}
}
