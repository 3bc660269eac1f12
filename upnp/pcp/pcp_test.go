package pcp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

type appender interface{ Append([]byte) ([]byte, error) }

func mustAppend(t testing.TB, a appender) []byte {
	t.Helper()
	b, err := a.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	lan1  = netip.MustParseAddr("192.168.1.10")
	wan   = netip.MustParseAddr("203.0.113.2")
	nonce = [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
)

// seeds are messages in RFC 6887's layouts (§7.1, §7.2, §11.1, §12.1, §13).
func seeds(t testing.TB) (reqs, resps [][]byte) {
	mapReq := Request{Opcode: OpMap, Lifetime: 7200 * time.Second, ClientAddr: lan1,
		Map:     &Map{Nonce: nonce, Protocol: 6, InternalPort: 8080, ExternalPort: 8080, ExternalAddr: netip.IPv4Unspecified()},
		Options: []Option{PreferFailureOption(), ThirdPartyOption(lan1), Filter{PrefixLength: 128, RemotePeerAddr: netip.MustParseAddr("198.51.100.10")}.Option(), {Code: 200, Data: []byte{1, 2, 3}}}}
	peerReq := Request{Opcode: OpPeer, Lifetime: 60 * time.Second, ClientAddr: netip.MustParseAddr("2001:db8:1:1::10"),
		Peer: &Peer{Map: Map{Nonce: nonce, Protocol: 17, InternalPort: 5000, ExternalAddr: netip.IPv6Unspecified()}, RemotePeerPort: 443, RemotePeerAddr: netip.MustParseAddr("2001:db8:100::10")}}
	announce := Request{Opcode: OpAnnounce, ClientAddr: lan1}
	for _, r := range []Request{mapReq, peerReq, announce} {
		reqs = append(reqs, mustAppend(t, r))
	}
	mapResp := Response{Opcode: OpMap, Lifetime: time.Hour, Epoch: 99 * time.Second, Map: &Map{Nonce: nonce, Protocol: 6, InternalPort: 8080, ExternalPort: 8080, ExternalAddr: wan}}
	errResp := Response{Opcode: OpMap, Result: MalformedRequest, Lifetime: 30 * time.Minute}
	for _, r := range []Response{mapResp, errResp, {Opcode: OpAnnounce, Epoch: time.Second}} {
		resps = append(resps, mustAppend(t, r))
	}
	return reqs, resps
}

func TestParseRequest(t *testing.T) {
	reqs, _ := seeds(t)
	unknownOp := append([]byte(nil), reqs[2]...)
	unknownOp[1] = 9
	v1 := append([]byte(nil), reqs[0]...)
	v1[0] = 1
	badOpt := append([]byte(nil), reqs[2]...)
	badOpt = append(badOpt, 1, 0, 0, 8, 0, 0, 0, 0)
	tests := []struct {
		name string
		b    []byte
		want Result
	}{
		{"map", reqs[0], Success},
		{"peer", reqs[1], Success},
		{"announce", reqs[2], Success},
		{"short", reqs[0][:20], MalformedRequest},
		{"not a multiple of 4", append(append([]byte(nil), reqs[2]...), 0), MalformedRequest},
		{"map data cut", reqs[0][:40], MalformedRequest},
		{"unknown opcode", unknownOp, UnsuppOpcode},
		{"version 1", v1, UnsuppVersion},
		{"option past the end", badOpt, MalformedOption},
		{"too big", make([]byte, 1104), MalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest(tt.b)
			got := Success
			if err != nil {
				var pe *Error
				if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("err %v is not a *Error wrapping ErrMalformed", err)
				}
				got = pe.Result
			}
			if got != tt.want {
				t.Errorf("result %v, want %v (err %v)", got, tt.want, err)
			}
		})
	}
}

func TestKnownOptions(t *testing.T) {
	reqs, _ := seeds(t)
	r, err := ParseRequest(reqs[0])
	if err != nil {
		t.Fatal(err)
	}
	k, err := r.KnownOptions()
	if err != nil {
		t.Fatal(err)
	}
	want := Known{ThirdParty: lan1, PreferFailure: true,
		Filters: []Filter{{PrefixLength: 128, RemotePeerAddr: netip.MustParseAddr("198.51.100.10")}},
		Unknown: []Option{{Code: 200, Data: []byte{1, 2, 3}}}}
	if d := cmp.Diff(want, k, addrCmp); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
	tests := []struct {
		name string
		opts []Option
		op   Opcode
		want Result
	}{
		{"unknown mandatory", []Option{{Code: 99}}, OpMap, UnsuppOption},
		{"two THIRD_PARTY", []Option{ThirdPartyOption(lan1), ThirdPartyOption(lan1)}, OpMap, MalformedOption},
		{"PREFER_FAILURE with PEER", []Option{PreferFailureOption()}, OpPeer, MalformedOption},
		{"short FILTER", []Option{{Code: OptFilter, Data: []byte{0, 0, 0, 0}}}, OpMap, MalformedOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Request{Opcode: tt.op, Options: tt.opts}.KnownOptions()
			var pe *Error
			if !errors.As(err, &pe) || pe.Result != tt.want {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	_, resps := seeds(t)
	for _, b := range resps {
		r, err := ParseResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		back := mustAppend(t, r)
		if d := cmp.Diff(b, back); d != "" {
			t.Errorf("(-want +got)\n%s", d)
		}
	}
	if len(resps[1]) != HeaderLen {
		t.Errorf("header-only error response is %d bytes", len(resps[1]))
	}
}

func FuzzParseRequest(f *testing.F) {
	reqs, _ := seeds(f)
	for _, s := range reqs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b)
		if err != nil {
			return
		}
		req.KnownOptions() // must not panic
		wire, err := req.Append(nil)
		if err != nil {
			t.Fatalf("accepted input cannot be re-encoded: %v", err)
		}
		back, err := ParseRequest(wire)
		if err != nil || !cmp.Equal(req, back, addrCmp) {
			t.Fatalf("round trip changed the request (%v): %v", err, cmp.Diff(req, back, addrCmp))
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	_, resps := seeds(f)
	for _, s := range resps {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := ParseResponse(b)
		if err != nil {
			return
		}
		wire, err := resp.Append(nil)
		if err != nil {
			t.Fatalf("accepted input cannot be re-encoded: %v", err)
		}
		back, err := ParseResponse(wire)
		if err != nil || !cmp.Equal(resp, back, addrCmp) {
			t.Fatalf("round trip changed the response (%v): %v", err, cmp.Diff(resp, back, addrCmp))
		}
	})
}
