package natpmp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Layouts of RFC 6886 §3.2, §3.3 and §3.5.
var (
	seedAddrReq   = []byte{0, 0}
	seedMapReq    = []byte{0, 2, 0, 0, 0x1f, 0x90, 0x1f, 0x91, 0, 0, 0x1c, 0x20}
	seedDeleteAll = []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	seedPCP       = append([]byte{2, 1}, make([]byte, 58)...)
	seedAddrResp  = []byte{0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 2}
	seedMapResp   = []byte{0, 130, 0, 0, 0, 0, 0, 9, 0x1f, 0x90, 0x1f, 0x91, 0, 0, 0x1c, 0x20}
	seedErrResp   = []byte{0, 133, 0, 5, 0, 0, 0, 1}
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		want    Request
		wantErr bool
	}{
		{"external address", seedAddrReq, Request{}, false},
		{"map tcp", seedMapReq, Request{Opcode: OpMapTCP, InternalPort: 8080, SuggestedExternalPort: 8081, Lifetime: 7200 * time.Second}, false},
		{"delete all udp", seedDeleteAll, Request{Opcode: OpMapUDP}, false},
		{"pcp is kept for the version answer", seedPCP, Request{Version: 2, Opcode: 1}, false},
		{"unknown opcode", []byte{0, 9}, Request{Opcode: 9}, false},
		{"short map", seedMapReq[:11], Request{}, true},
		{"one byte", []byte{0}, Request{}, true},
		{"a response", seedAddrResp, Request{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("err %v does not wrap ErrMalformed", err)
				}
				return
			}
			if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestResponseAppend(t *testing.T) {
	tests := []struct {
		name string
		r    Response
		want []byte
	}{
		{"address", Response{Epoch: 9 * time.Second, ExternalAddr: netip.MustParseAddr("203.0.113.2")}, seedAddrResp},
		{"map", Response{Opcode: OpMapTCP, Epoch: 9 * time.Second, InternalPort: 8080, ExternalPort: 8081, Lifetime: 2 * time.Hour}, seedMapResp},
		{"unsupported opcode", Response{Opcode: 5, Result: UnsupportedOpcode, Epoch: time.Second}, seedErrResp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.r.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
	for _, bad := range []Response{
		{Epoch: time.Second / 2, ExternalAddr: netip.MustParseAddr("203.0.113.2")},
		{ExternalAddr: netip.MustParseAddr("2001:db8::1")},
		{Opcode: OpMapUDP, Lifetime: -time.Second},
		{Opcode: 200},
	} {
		if _, err := bad.Append(nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: err = %v, want ErrMalformed", bad, err)
		}
	}
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func FuzzParseRequest(f *testing.F) {
	for _, s := range [][]byte{seedAddrReq, seedMapReq, seedDeleteAll, seedPCP, {0, 9}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b)
		if err != nil {
			return
		}
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
	for _, s := range [][]byte{seedAddrResp, seedMapResp, seedErrResp} {
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
