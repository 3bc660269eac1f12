package pd

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	testIAID     = [4]byte{0, 0, 0, 1}
	testClientID = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: testMAC}
	t0           = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}
}

// replyOf encodes l as the Reply a server would send at now: the inverse
// of parseReply.
func replyOf(l Lease, now time.Time, clientID []byte, iaid [4]byte) []byte {
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
	cid, _ := dhcpv6.DUIDFromBytes(clientID)
	m.AddOption(dhcpv6.OptClientID(cid))
	sid, _ := dhcpv6.DUIDFromBytes(l.Server)
	m.AddOption(dhcpv6.OptServerID(sid))
	pd := &dhcpv6.OptIAPD{IaId: iaid}
	if l.Prefix.IsValid() {
		pd.T1, pd.T2 = l.T1.Sub(now), l.T2.Sub(now)
		pd.Options.Add(&dhcpv6.OptIAPrefix{PreferredLifetime: l.Preferred.Sub(now), ValidLifetime: l.Valid.Sub(now), Prefix: ipnet(l.Prefix)})
	}
	m.AddOption(pd)
	if l.Addr.IsValid() {
		na := &dhcpv6.OptIANA{IaId: iaid}
		na.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: l.Addr.Addr().AsSlice(), PreferredLifetime: l.AddrPreferred.Sub(now), ValidLifetime: l.AddrValid.Sub(now)})
		m.AddOption(na)
	}
	if len(l.DNS) > 0 {
		var ips []net.IP
		for _, a := range l.DNS {
			ips = append(ips, a.AsSlice())
		}
		m.AddOption(dhcpv6.OptDNS(ips...))
	}
	return m.ToBytes()
}

func TestParseReply(t *testing.T) {
	s := time.Second
	type ia struct {
		t1, t2           time.Duration
		prefix           string
		preferred, valid time.Duration
		status           iana.StatusCode
	}
	build := func(pd *ia, top iana.StatusCode, cid dhcpv6.DUID) *dhcpv6.Message {
		m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply}
		if cid != nil {
			m.AddOption(dhcpv6.OptClientID(cid))
		}
		m.AddOption(dhcpv6.OptServerID(serverDUID))
		if top != 0 {
			m.AddOption(&dhcpv6.OptStatusCode{StatusCode: top})
		}
		if pd != nil {
			o := &dhcpv6.OptIAPD{IaId: testIAID, T1: pd.t1, T2: pd.t2}
			if pd.prefix != "" {
				o.Options.Add(&dhcpv6.OptIAPrefix{PreferredLifetime: pd.preferred, ValidLifetime: pd.valid, Prefix: ipnet(netip.MustParsePrefix(pd.prefix))})
			}
			if pd.status != 0 {
				o.Options.Add(&dhcpv6.OptStatusCode{StatusCode: pd.status})
			}
			m.AddOption(o)
		}
		return m
	}
	for _, tc := range []struct {
		name       string
		m          *dhcpv6.Message
		wantPrefix string
		wantT1     time.Duration
		wantT2     time.Duration
		wantErr    error // ErrMalformed, or a *StatusError to match by code
	}{
		{name: "plain", m: build(&ia{t1: 10 * s, t2: 16 * s, prefix: "2001:db8:1::/56", preferred: 20 * s, valid: 30 * s}, 0, testClientID),
			wantPrefix: "2001:db8:1::/56", wantT1: 10 * s, wantT2: 16 * s},
		{name: "T1 T2 zero: 0.5 and 0.8 of preferred", m: build(&ia{prefix: "2001:db8:1::/56", preferred: 25 * s, valid: 30 * s}, 0, testClientID),
			wantPrefix: "2001:db8:1::/56", wantT1: 12 * s, wantT2: 20 * s},
		{name: "deprecated prefix: timers from valid", m: build(&ia{prefix: "2001:db8:1::/56", valid: 30 * s}, 0, testClientID),
			wantPrefix: "2001:db8:1::/56", wantT1: 15 * s, wantT2: 24 * s},
		{name: "T1 > T2 discards", m: build(&ia{t1: 20 * s, t2: 10 * s, prefix: "2001:db8:1::/56", preferred: 20 * s, valid: 30 * s}, 0, testClientID),
			wantErr: ErrMalformed},
		{name: "preferred > valid: prefix ignored", m: build(&ia{prefix: "2001:db8:1::/56", preferred: 40 * s, valid: 30 * s}, 0, testClientID)},
		{name: "valid 0: withdrawn", m: build(&ia{prefix: "2001:db8:1::/56"}, 0, testClientID)},
		{name: "host bits set", m: build(&ia{prefix: "2001:db8:1::1/56", preferred: 20 * s, valid: 30 * s}, 0, testClientID)},
		{name: "NoPrefixAvail", m: build(&ia{status: iana.StatusNoPrefixAvail}, 0, testClientID),
			wantErr: &StatusError{Where: "IA_PD", Code: iana.StatusNoPrefixAvail}},
		{name: "NoBinding", m: build(&ia{status: iana.StatusNoBinding}, 0, testClientID),
			wantErr: &StatusError{Where: "IA_PD", Code: iana.StatusNoBinding}},
		{name: "UnspecFail", m: build(nil, iana.StatusUnspecFail, testClientID),
			wantErr: &StatusError{Where: "message", Code: iana.StatusUnspecFail}},
		{name: "no IA_PD", m: build(nil, 0, testClientID), wantErr: ErrMalformed},
		{name: "no client ID", m: build(&ia{prefix: "2001:db8:1::/56", preferred: 20 * s, valid: 30 * s}, 0, nil), wantErr: ErrMalformed},
		{name: "other client", m: build(&ia{prefix: "2001:db8:1::/56", preferred: 20 * s, valid: 30 * s}, 0, otherDUID), wantErr: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseReply(tc.m, testClientID.ToBytes(), testIAID, t0)
			var se, wse *StatusError
			switch {
			case errors.As(tc.wantErr, &wse):
				if !errors.As(err, &se) || se.Code != wse.Code || se.Where != wse.Where {
					t.Fatalf("err %v, want status %s in %s", err, wse.Code, wse.Where)
				}
				return
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("err %v", err)
			}
			got := ""
			if l.Prefix.IsValid() {
				got = l.Prefix.String()
			}
			if got != tc.wantPrefix {
				t.Fatalf("prefix %q, want %q", got, tc.wantPrefix)
			}
			if got != "" && (l.T1.Sub(t0) != tc.wantT1 || l.T2.Sub(t0) != tc.wantT2) {
				t.Errorf("T1 %v T2 %v, want %v %v", l.T1.Sub(t0), l.T2.Sub(t0), tc.wantT1, tc.wantT2)
			}
		})
	}
}

func FuzzParseReply(f *testing.F) {
	cid := testClientID.ToBytes()
	f.Add(replyOf(Lease{Prefix: testPrefix, Preferred: t0.Add(time.Hour), Valid: t0.Add(2 * time.Hour),
		T1: t0.Add(30 * time.Minute), T2: t0.Add(48 * time.Minute), Addr: netip.PrefixFrom(testAddr, 128),
		AddrPreferred: t0.Add(time.Hour), AddrValid: t0.Add(2 * time.Hour),
		DNS: []netip.Addr{netip.MustParseAddr("2001:db8::53")}, Server: serverDUID.ToBytes()}, t0, cid, testIAID))
	f.Add(replyOf(Lease{Prefix: testPrefix, Preferred: t0.Add(infinity), Valid: t0.Add(infinity),
		T1: t0.Add(infinity), T2: t0.Add(infinity), Server: serverDUID.ToBytes()}, t0, cid, testIAID))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv6.MessageFromBytes(b)
		if err != nil {
			return
		}
		l, err := parseReply(m, cid, testIAID, t0)
		if err != nil {
			return
		}
		if l.Prefix.IsValid() {
			if l.Prefix.Masked() != l.Prefix || l.Preferred.After(l.Valid) || !l.Valid.After(t0) || l.T1.After(l.T2) || !l.T1.After(t0) {
				t.Fatalf("accepted an inconsistent lease: %+v", l)
			}
		}
		back, err := parseReply(mustParse(t, replyOf(l, t0, cid, testIAID)), cid, testIAID, t0)
		if err != nil {
			t.Fatalf("re-encoded lease refused: %v", err)
		}
		if diff := cmp.Diff(l, back, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("round trip changed the lease (-first +second):\n%s", diff)
		}
	})
}

func mustParse(t *testing.T, b []byte) *dhcpv6.Message {
	t.Helper()
	m, err := dhcpv6.MessageFromBytes(b)
	if err != nil {
		t.Fatalf("our own reply does not parse: %v", err)
	}
	return m
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     retrans
		first bool
		rnd   float64
		want  []time.Duration
	}{
		{name: "solicit, RAND 0 made positive", p: solicitRT, first: true, rnd: 0,
			want: []time.Duration{1050 * time.Millisecond, 2100 * time.Millisecond}},
		{name: "request MRC 10", p: requestRT, rnd: 0.1,
			want: []time.Duration{1100 * time.Millisecond, 2310 * time.Millisecond, 4851 * time.Millisecond, 10187100 * time.Microsecond, 21392910 * time.Microsecond, 33 * time.Second, 33 * time.Second, 33 * time.Second, 33 * time.Second, 33 * time.Second}},
		{name: "release MRC 4", p: releaseRT, rnd: -0.1,
			want: []time.Duration{900 * time.Millisecond, 1710 * time.Millisecond, 3249 * time.Millisecond, 6173100 * time.Microsecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := backoff{p: tc.p, first: tc.first, rnd: func() float64 { return tc.rnd }}
			var got []time.Duration
			for range 20 {
				rt, ok := b.next()
				if !ok {
					break
				}
				got = append(got, rt)
				if len(got) == len(tc.want) && tc.p.MRC == 0 {
					break
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("timeouts (-want +got):\n%s", diff)
			}
		})
	}
}
