package pmp

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/nat44"
	"gateway/nat44/nat44test"
	"gateway/upnp/natpmp"
	"gateway/upnp/pcp"
)

var (
	wan    = netip.MustParseAddr("203.0.113.2")
	lan1   = netip.MustParseAddr("192.168.1.10")
	lan2   = netip.MustParseAddr("192.168.1.11")
	lan1v6 = netip.MustParseAddr("2001:db8:1:1::10")
	pub    = netip.MustParseAddr("198.51.100.10")
	pubv6  = netip.MustParseAddr("2001:db8:100::10")
	lans   = []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("2001:db8:1:1::/64")}
	cmpIP  = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	nonceA = [12]byte{'a'}
	nonceB = [12]byte{'b'}
)

// startNAT runs a mapping service over a fake datapath, with the WAN
// address set, inside the caller's synctest bubble.
func startNAT(t testing.TB, pol nat44.Policy) (*nat44.NAT, *nat44test.FakeDatapath) {
	t.Helper()
	dp := nat44test.NewFakeDatapath()
	n, err := nat44.New(nat44.Config{WAN: "wan0", LANs: []string{"br-lan"}, Policy: pol, Datapath: dp,
		Conntrack: nat44test.NewFakeConntrack(), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	<-n.Ready()
	t.Cleanup(func() { cancel(); <-done })
	n.SetLANPrefixes(lans)
	if err := n.SetWAN(wan); err != nil {
		t.Fatal(err)
	}
	return n, dp
}

func natpmpDo(t *testing.T, c *Core, from netip.Addr, req natpmp.Request) natpmp.Response {
	t.Helper()
	b, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := c.Handle(b, netip.AddrPortFrom(from, 40000))
	if out == nil {
		t.Fatalf("%+v from %v: no answer", req, from)
	}
	resp, err := natpmp.ParseResponse(out)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestNATPMP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, dp := startNAT(t, nat44.Policy{})
		c := NewCore(n, CoreConfig{})
		c.SetLANs(lans)
		mapTCP := func(internal, ext uint16, life time.Duration) natpmp.Request {
			return natpmp.Request{Opcode: natpmp.OpMapTCP, InternalPort: internal, SuggestedExternalPort: ext, Lifetime: life}
		}
		if _, err := n.Map(nat44.Request{Owner: nat44.OwnerUPnP, Client: lan2, Proto: nat44.UDP, ExternalPort: 7000, Internal: netip.AddrPortFrom(lan2, 7000), Lifetime: time.Hour}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			from netip.Addr
			req  natpmp.Request
			want natpmp.Response
		}{
			{"external address", lan1, natpmp.Request{}, natpmp.Response{ExternalAddr: wan}},
			{"map the suggested port", lan1, mapTCP(8080, 8080, time.Hour), natpmp.Response{Opcode: natpmp.OpMapTCP, InternalPort: 8080, ExternalPort: 8080, Lifetime: time.Hour}},
			{"renewal keeps the port", lan1, mapTCP(8080, 9999, 2*time.Hour), natpmp.Response{Opcode: natpmp.OpMapTCP, InternalPort: 8080, ExternalPort: 8080, Lifetime: 2 * time.Hour}},
			{"taken: another port", lan2, mapTCP(8080, 8080, time.Hour), natpmp.Response{Opcode: natpmp.OpMapTCP, InternalPort: 8080, ExternalPort: 8081, Lifetime: time.Hour}},
			{"port 0: any, the internal one", lan2, mapTCP(5555, 0, time.Hour), natpmp.Response{Opcode: natpmp.OpMapTCP, InternalPort: 5555, ExternalPort: 5555, Lifetime: time.Hour}},
			{"lifetime clamped up", lan1, natpmp.Request{Opcode: natpmp.OpMapUDP, InternalPort: 6000, SuggestedExternalPort: 6000, Lifetime: time.Second}, natpmp.Response{Opcode: natpmp.OpMapUDP, InternalPort: 6000, ExternalPort: 6000, Lifetime: 120 * time.Second}},
			{"a UPnP mapping is not NAT-PMP's to delete", lan2, natpmp.Request{Opcode: natpmp.OpMapUDP, InternalPort: 7000}, natpmp.Response{Opcode: natpmp.OpMapUDP, Result: natpmp.NotAuthorized, InternalPort: 7000}},
			{"a UPnP port is not granted again", lan1, natpmp.Request{Opcode: natpmp.OpMapUDP, InternalPort: 7000, SuggestedExternalPort: 7000, Lifetime: time.Hour}, natpmp.Response{Opcode: natpmp.OpMapUDP, InternalPort: 7000, ExternalPort: 7001, Lifetime: time.Hour}},
			{"delete", lan1, mapTCP(8080, 0, 0), natpmp.Response{Opcode: natpmp.OpMapTCP, InternalPort: 8080}},
			{"delete what is not there", lan1, mapTCP(8080, 0, 0), natpmp.Response{Opcode: natpmp.OpMapTCP, InternalPort: 8080}},
			{"delete all tcp", lan2, mapTCP(0, 0, 0), natpmp.Response{Opcode: natpmp.OpMapTCP}},
			{"unsupported opcode", lan1, natpmp.Request{Opcode: 3}, natpmp.Response{Opcode: 3, Result: natpmp.UnsupportedOpcode}},
			{"IPv6: refused", lan1v6, mapTCP(80, 80, time.Hour), natpmp.Response{Opcode: natpmp.OpMapTCP, Result: natpmp.NotAuthorized, InternalPort: 80}},
		}
		for _, tt := range tests {
			got := natpmpDo(t, c, tt.from, tt.req)
			tt.want.Epoch = got.Epoch
			if d := cmp.Diff(tt.want, got, cmpIP); d != "" {
				t.Errorf("%s: (-want +got)\n%s", tt.name, d)
			}
		}
		fw := dp.Forwards()
		want := map[nat44.Key]netip.AddrPort{
			{Proto: nat44.UDP, ExternalPort: 6000}: netip.AddrPortFrom(lan1, 6000),
			{Proto: nat44.UDP, ExternalPort: 7000}: netip.AddrPortFrom(lan2, 7000),
			{Proto: nat44.UDP, ExternalPort: 7001}: netip.AddrPortFrom(lan1, 7000),
		}
		if d := cmp.Diff(want, fw, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); d != "" {
			t.Errorf("datapath (-want +got)\n%s", d)
		}

		// Requests from outside the LAN subnets are ignored.
		b, _ := natpmp.Request{}.Append(nil)
		if out := c.Handle(b, netip.AddrPortFrom(pub, 5351)); out != nil {
			t.Errorf("answered a request from %v", pub)
		}
		if got := c.Counters()[dropNotLAN]; got != 1 {
			t.Errorf("%s = %d, want 1", dropNotLAN, got)
		}
		// No WAN address: Network Failure.
		n.SetWAN(netip.Addr{})
		if got := natpmpDo(t, c, lan1, natpmp.Request{}); got.Result != natpmp.NetworkFailure {
			t.Errorf("without WAN: %v", got.Result)
		}
		if got := natpmpDo(t, c, lan1, mapTCP(1234, 1234, time.Hour)); got.Result != natpmp.NetworkFailure {
			t.Errorf("map without WAN: %v", got.Result)
		}
	})
}

// pcpClient builds PCP requests as a client would.
type pcpClient struct {
	t    *testing.T
	c    *Core
	from netip.Addr
}

func (p pcpClient) do(req pcp.Request) pcp.Response {
	p.t.Helper()
	if !req.ClientAddr.IsValid() {
		req.ClientAddr = p.from
	}
	b, err := req.Append(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.raw(b)
}

func (p pcpClient) raw(b []byte) pcp.Response {
	p.t.Helper()
	out := p.c.Handle(b, netip.AddrPortFrom(p.from, 40000))
	if out == nil {
		p.t.Fatalf("no answer")
	}
	resp, err := pcp.ParseResponse(out)
	if err != nil {
		p.t.Fatalf("answer %x: %v", out, err)
	}
	return resp
}

func mapReq(nonce [12]byte, proto uint8, internal, ext uint16, life time.Duration, opts ...pcp.Option) pcp.Request {
	return pcp.Request{Opcode: pcp.OpMap, Lifetime: life,
		Map:     &pcp.Map{Nonce: nonce, Protocol: proto, InternalPort: internal, ExternalPort: ext, ExternalAddr: netip.IPv4Unspecified()},
		Options: opts}
}

func TestPCPMap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, dp := startNAT(t, nat44.Policy{})
		c := NewCore(n, CoreConfig{})
		c.SetLANs(lans)
		a, b := pcpClient{t, c, lan1}, pcpClient{t, c, lan2}

		r := a.do(mapReq(nonceA, 17, 4000, 4000, time.Hour))
		want := pcp.Map{Nonce: nonceA, Protocol: 17, InternalPort: 4000, ExternalPort: 4000, ExternalAddr: wan}
		if r.Result != pcp.Success || r.Lifetime != time.Hour || r.Map == nil || !cmp.Equal(want, *r.Map, cmpIP) {
			t.Fatalf("MAP: %v %v %+v", r.Result, r.Lifetime, r.Map)
		}
		if r.Epoch != n.Epoch().Truncate(time.Second) {
			t.Errorf("epoch %v", r.Epoch)
		}
		steps := []struct {
			name string
			cl   pcpClient
			req  pcp.Request
			want pcp.Result
			port uint16
		}{
			{"renewal with the nonce", a, mapReq(nonceA, 17, 4000, 0, time.Hour), pcp.Success, 4000},
			{"renewal with another nonce", a, mapReq(nonceB, 17, 4000, 4000, time.Hour), pcp.NotAuthorized, 0},
			{"delete with another nonce, not naming the mapping", a, mapReq(nonceB, 17, 4000, 0, 0), pcp.NotAuthorized, 0},
			{"PREFER_FAILURE on a taken port", b, mapReq(nonceB, 17, 4000, 4000, time.Hour, pcp.PreferFailureOption()), pcp.CannotProvideExternal, 0},
			{"taken: another port", b, mapReq(nonceB, 17, 4000, 4000, time.Hour), pcp.Success, 4001},
			{"THIRD_PARTY refused", b, mapReq(nonceB, 6, 80, 80, time.Hour, pcp.ThirdPartyOption(lan1)), pcp.NotAuthorized, 0},
			{"unsupported protocol", a, mapReq(nonceA, 1, 0, 0, time.Hour), pcp.UnsuppProtocol, 0},
			{"unknown mandatory option", a, mapReq(nonceA, 6, 80, 80, time.Hour, pcp.Option{Code: 99}), pcp.UnsuppOption, 0},
			{"unknown optional option ignored", a, mapReq(nonceA, 6, 8443, 8443, time.Hour, pcp.Option{Code: 200}), pcp.Success, 8443},
			{"FILTER", a, mapReq(nonceA, 6, 2222, 2222, time.Hour, pcp.Filter{PrefixLength: 128, RemotePeerAddr: pub}.Option()), pcp.Success, 2222},
			{"FILTER on a subnet", a, mapReq(nonceA, 6, 2223, 2223, time.Hour, pcp.Filter{PrefixLength: 120, RemotePeerAddr: pub}.Option()), pcp.UnsuppOption, 0},
			{"client address mismatch", a, func() pcp.Request { r := mapReq(nonceA, 6, 80, 80, time.Hour); r.ClientAddr = lan2; return r }(), pcp.AddressMismatch, 0},
			{"ANNOUNCE", a, pcp.Request{Opcode: pcp.OpAnnounce}, pcp.Success, 0},
		}
		for _, s := range steps {
			r := s.cl.do(s.req)
			if r.Result != s.want {
				t.Errorf("%s: %v, want %v", s.name, r.Result, s.want)
				continue
			}
			if r.Result != pcp.Success && r.Lifetime == 0 {
				t.Errorf("%s: error without a lifetime", s.name)
			}
			if s.port != 0 && (r.Map == nil || r.Map.ExternalPort != s.port) {
				t.Errorf("%s: %+v, want port %d", s.name, r.Map, s.port)
			}
		}
		if got := dp.ForwardRemotes()[nat44.Key{Proto: nat44.TCP, ExternalPort: 2222}]; got != pub {
			t.Errorf("FILTER: remote %v, want %v", got, pub)
		}

		// Another host's release naming lan1's mapping finds nothing of
		// its own: lan1's mapping stays.
		rel := mapReq(nonceB, 17, 4000, 4000, 0)
		rel.Map.ExternalAddr = wan
		if r := b.do(mapReq(nonceA, 17, 4000, 4000, 0)); r.Result != pcp.NotAuthorized {
			t.Errorf("lan2 deleting its own mapping with a wrong nonce: %v", r.Result)
		}
		if _, ok := n.Get(nat44.Key{Proto: nat44.UDP, ExternalPort: 4000}); !ok {
			t.Fatal("lan1's mapping gone")
		}
		// The tailscale release: a fresh nonce, naming the assigned
		// external port and address, from the mapping's own host.
		if r := a.do(rel); r.Result != pcp.Success || r.Lifetime != 0 {
			t.Errorf("release by mapping: %v %v", r.Result, r.Lifetime)
		}
		if _, ok := n.Get(nat44.Key{Proto: nat44.UDP, ExternalPort: 4000}); ok {
			t.Error("released mapping still there")
		}
		if c.Counters()["pcp_release_by_mapping"] != 1 {
			t.Errorf("counters %v", c.Counters())
		}
		// A delete with the right nonce.
		if r := b.do(mapReq(nonceB, 17, 4000, 0, 0)); r.Result != pcp.Success {
			t.Errorf("delete: %v", r.Result)
		}
		if _, ok := n.Get(nat44.Key{Proto: nat44.UDP, ExternalPort: 4001}); ok {
			t.Error("deleted mapping still there")
		}
	})
}

func TestPCPVersions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _ := startNAT(t, nat44.Policy{})
		c := NewCore(n, CoreConfig{})
		c.SetLANs(lans)
		req := mapReq(nonceA, 6, 80, 80, time.Hour)
		req.ClientAddr = lan1
		good, _ := req.Append(nil)
		for _, v := range []byte{1, 3, 255} {
			b := append([]byte(nil), good...)
			b[0] = v
			out := c.Handle(b, netip.AddrPortFrom(lan1, 1))
			r, err := pcp.ParseResponse(out)
			if err != nil || r.Result != pcp.UnsuppVersion || out[0] != pcp.Version {
				t.Errorf("version %d: %v %v", v, r.Result, err)
			}
			if r.Map == nil || r.Map.Nonce != nonceA {
				t.Errorf("version %d: request data not copied: %+v", v, r.Map)
			}
		}
		// A NAT-PMP request is answered as NAT-PMP (RFC 6887 §9).
		out := c.Handle([]byte{0, 0}, netip.AddrPortFrom(lan1, 1))
		if r, err := natpmp.ParseResponse(out); err != nil || r.ExternalAddr != wan {
			t.Errorf("NAT-PMP to the PCP server: %+v %v", r, err)
		}
		// Unknown opcode.
		b := append([]byte(nil), good[:24]...)
		b[1] = 9
		if r, _ := pcp.ParseResponse(c.Handle(b, netip.AddrPortFrom(lan1, 1))); r.Result != pcp.UnsuppOpcode {
			t.Errorf("opcode 9: %v", r.Result)
		}
		// Responses and runts are dropped.
		for _, b := range [][]byte{{2, 0x81, 0, 0}, {2, 1, 0}, {0, 128}} {
			if out := c.Handle(b, netip.AddrPortFrom(lan1, 1)); out != nil {
				t.Errorf("%x answered", b)
			}
		}
		// PCP off: a NAT-PMP-only server's answer.
		off := NewCore(n, CoreConfig{NoPCP: true})
		off.SetLANs(lans)
		if r, err := natpmp.ParseResponse(off.Handle(good, netip.AddrPortFrom(lan1, 1))); err != nil || r.Result != natpmp.UnsupportedVersion {
			t.Errorf("PCP off: %+v %v", r, err)
		}
	})
}

func TestPCPPinholeAndPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, dp := startNAT(t, nat44.Policy{})
		c := NewCore(n, CoreConfig{})
		c.SetLANs(lans)
		a6 := pcpClient{t, c, lan1v6}
		r := a6.do(pcp.Request{Opcode: pcp.OpMap, Lifetime: time.Hour, Map: &pcp.Map{Nonce: nonceA, Protocol: 6, InternalPort: 8000, ExternalAddr: netip.IPv6Unspecified()}})
		if r.Result != pcp.Success || r.Map.ExternalAddr != lan1v6 || r.Map.ExternalPort != 8000 {
			t.Fatalf("IPv6 MAP: %v %+v", r.Result, r.Map)
		}
		if !dp.Admits(pubv6, nat44.TCP, netip.AddrPortFrom(lan1v6, 8000)) {
			t.Error("pinhole does not admit the internet")
		}
		if r := a6.do(pcp.Request{Opcode: pcp.OpMap, Map: &pcp.Map{Nonce: nonceB, Protocol: 6, InternalPort: 8000, ExternalAddr: netip.IPv6Unspecified()}}); r.Result != pcp.NotAuthorized {
			t.Errorf("pinhole delete with another nonce: %v", r.Result)
		}
		if r := a6.do(pcp.Request{Opcode: pcp.OpMap, Map: &pcp.Map{Nonce: nonceA, Protocol: 6, InternalPort: 8000, ExternalAddr: netip.IPv6Unspecified()}}); r.Result != pcp.Success {
			t.Errorf("pinhole delete: %v", r.Result)
		}
		if dp.Admits(pubv6, nat44.TCP, netip.AddrPortFrom(lan1v6, 8000)) {
			t.Error("pinhole still open")
		}

		// PEER on IPv4: a mapping filtered to the peer.
		a := pcpClient{t, c, lan1}
		peer := pcp.Request{Opcode: pcp.OpPeer, Lifetime: time.Hour, Peer: &pcp.Peer{
			Map:            pcp.Map{Nonce: nonceA, Protocol: 17, InternalPort: 5000, ExternalAddr: netip.IPv4Unspecified()},
			RemotePeerPort: 3478, RemotePeerAddr: pub}}
		r = a.do(peer)
		if r.Result != pcp.Success || r.Peer == nil || r.Peer.ExternalPort != 5000 || r.Peer.ExternalAddr != wan || r.Peer.RemotePeerAddr != pub {
			t.Fatalf("PEER: %v %+v", r.Result, r.Peer)
		}
		if got := dp.ForwardRemotes()[nat44.Key{Proto: nat44.UDP, ExternalPort: 5000}]; got != pub {
			t.Errorf("PEER remote %v", got)
		}
		peer.Lifetime = 0
		if r := a.do(peer); r.Result != pcp.Success {
			t.Errorf("PEER delete: %v", r.Result)
		}
		if _, ok := n.Get(nat44.Key{Proto: nat44.UDP, ExternalPort: 5000}); ok {
			t.Error("PEER mapping still there")
		}
	})
}

// TestPCPNAT66: behind NAT66 a ULA host's MAP and PEER answer with the
// NAT66 address and the internal port, the kernel DNATs that port to the
// host, and a second ULA host is refused the same port.
func TestPCPNAT66(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, dp := startNAT(t, nat44.Policy{})
		ula := netip.MustParsePrefix("fd00:77::/64")
		all := append([]netip.Prefix{ula}, lans...)
		n.SetLANPrefixes(all)
		c := NewCore(n, CoreConfig{})
		c.SetLANs(all)
		teredo := netip.MustParseAddr("2001:0:c633:6401:0:fbff:9bfe:fefd")
		if err := n.SetNAT66([]string{"teredo"}); err != nil {
			t.Fatal(err)
		}
		if err := n.SetNAT66Address(teredo); err != nil {
			t.Fatal(err)
		}
		h1, h2 := netip.MustParseAddr("fd00:77::10"), netip.MustParseAddr("fd00:77::11")
		a, b := pcpClient{t, c, h1}, pcpClient{t, c, h2}
		mapReq := func(nonce [12]byte, port uint16, life time.Duration) pcp.Request {
			return pcp.Request{Opcode: pcp.OpMap, Lifetime: life, Map: &pcp.Map{Nonce: nonce, Protocol: 6, InternalPort: port, ExternalAddr: netip.IPv6Unspecified()}}
		}

		r := a.do(mapReq(nonceA, 8000, time.Hour))
		if r.Result != pcp.Success || r.Map.ExternalAddr != teredo || r.Map.ExternalPort != 8000 {
			t.Fatalf("ULA MAP: %v %+v; want %v port 8000", r.Result, r.Map, teredo)
		}
		if got, ok := dp.LookupNAT66(nat44.TCP, 8000); !ok || got != netip.AddrPortFrom(h1, 8000) {
			t.Errorf("kernel NAT66 tcp/8000 = %v, %v; want [%v]:8000", got, ok, h1)
		}
		if !dp.Admits(pubv6, nat44.TCP, netip.AddrPortFrom(h1, 8000)) {
			t.Error("the pinhole does not admit the internet")
		}
		if r := b.do(mapReq(nonceB, 8000, time.Hour)); r.Result != pcp.CannotProvideExternal {
			t.Errorf("a second ULA host on the same port: %v, want CANNOT_PROVIDE_EXTERNAL", r.Result)
		}
		if got, _ := dp.LookupNAT66(nat44.TCP, 8000); got.Addr() != h1 {
			t.Errorf("the refused request moved the port to %v", got)
		}

		// PREFER_FAILURE: the NAT66 address is what it may suggest.
		pf := mapReq(nonceB, 8001, time.Hour)
		pf.Map.ExternalAddr = teredo
		pf.Options = []pcp.Option{pcp.PreferFailureOption()}
		if r := b.do(pf); r.Result != pcp.Success || r.Map.ExternalAddr != teredo {
			t.Errorf("PREFER_FAILURE for the NAT66 address: %v %+v", r.Result, r.Map)
		}
		pf.Map.ExternalAddr, pf.Map.InternalPort = h2, 8002
		if r := b.do(pf); r.Result != pcp.CannotProvideExternal {
			t.Errorf("PREFER_FAILURE for the host's own ULA: %v, want CANNOT_PROVIDE_EXTERNAL", r.Result)
		}

		// PEER: the same external address, for the one remote peer.
		peer := pcp.Request{Opcode: pcp.OpPeer, Lifetime: time.Hour, Peer: &pcp.Peer{
			Map:            pcp.Map{Nonce: nonceB, Protocol: 17, InternalPort: 5000, ExternalAddr: netip.IPv6Unspecified()},
			RemotePeerPort: 3478, RemotePeerAddr: pubv6}}
		r = b.do(peer)
		if r.Result != pcp.Success || r.Peer == nil || r.Peer.ExternalAddr != teredo || r.Peer.ExternalPort != 5000 {
			t.Fatalf("ULA PEER: %v %+v", r.Result, r.Peer)
		}
		if got, ok := dp.LookupNAT66(nat44.UDP, 5000); !ok || got != netip.AddrPortFrom(h2, 5000) {
			t.Errorf("kernel NAT66 udp/5000 = %v, %v", got, ok)
		}

		// Deleted, the port is free for the other host.
		if r := a.do(mapReq(nonceA, 8000, 0)); r.Result != pcp.Success || r.Map.ExternalAddr != teredo {
			t.Errorf("ULA MAP delete: %v %+v", r.Result, r.Map)
		}
		if r := b.do(mapReq(nonceB, 8000, time.Hour)); r.Result != pcp.Success {
			t.Errorf("the freed port for the other host: %v", r.Result)
		}

		// A global host behind the same gateway keeps its own address.
		if r := (pcpClient{t, c, lan1v6}).do(mapReq(nonceA, 8000, time.Hour)); r.Result != pcp.Success || r.Map.ExternalAddr != lan1v6 {
			t.Errorf("global host's MAP: %v %+v", r.Result, r.Map)
		}
	})
}
