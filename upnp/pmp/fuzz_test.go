package pmp

import (
	"net/netip"
	"testing"
	"time"

	"gateway/nat44"
	"gateway/upnp/natpmp"
	"gateway/upnp/pcp"
)

// FuzzHandle feeds the core any datagram from a LAN host: it never
// panics, and whatever it answers parses as a response of the version it
// claims.
func FuzzHandle(f *testing.F) {
	for _, r := range []pcp.Request{
		mapReq(nonceA, 6, 80, 80, time.Hour, pcp.PreferFailureOption(), pcp.Filter{PrefixLength: 128, RemotePeerAddr: pub}.Option()),
		mapReq(nonceA, 17, 0, 0, 0),
		{Opcode: pcp.OpAnnounce},
	} {
		r.ClientAddr = lan1
		b, _ := r.Append(nil)
		f.Add(b)
	}
	f.Add([]byte{0, 0})
	f.Add([]byte{0, 1, 0, 0, 0x1f, 0x90, 0, 0, 0, 0, 0x0e, 0x10})
	n, _ := startNAT(f, nat44.Policy{AllowThirdParty: true})
	c := NewCore(n, CoreConfig{ThirdParty: true})
	c.SetLANs(lans)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, src := range []netip.Addr{lan1, lan1v6} {
			out := c.Handle(b, netip.AddrPortFrom(src, 5350))
			if out == nil {
				continue
			}
			var err error
			if out[0] == natpmp.Version {
				_, err = natpmp.ParseResponse(out)
			} else {
				_, err = pcp.ParseResponse(out)
			}
			if err != nil {
				t.Fatalf("answer %x to %x does not parse: %v", out, b, err)
			}
		}
	})
}
