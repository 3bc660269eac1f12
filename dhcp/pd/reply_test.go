package pd

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/dhcp/dhcp6"
)

var (
	testIAID     = [4]byte{0, 0, 0, 1}
	testClientID = dhcp6.DUID{0, 3, 0, 1, 0x02, 0, 0, 0, 0, 0x42} // DUID-LL of testMAC
	t0           = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// replyOf encodes l as the Reply a server would send at now: the inverse
// of parseReply.
func replyOf(l Lease, now time.Time, clientID dhcp6.DUID, iaid [4]byte) []byte {
	m := dhcp6.Message{Type: dhcp6.Reply, TransactionID: [3]byte{1, 2, 3}, ClientID: clientID, ServerID: l.Server, DNS: l.DNS}
	pd := dhcp6.IAPD{IAID: iaid}
	if l.Prefix.IsValid() {
		pd.T1, pd.T2 = l.T1.Sub(now), l.T2.Sub(now)
		pd.Prefixes = []dhcp6.IAPrefix{{Preferred: l.Preferred.Sub(now), Valid: l.Valid.Sub(now), Prefix: l.Prefix}}
	}
	m.IAPD = []dhcp6.IAPD{pd}
	if l.Addr.IsValid() {
		m.IANA = []dhcp6.IANA{{IAID: iaid, Addrs: []dhcp6.IAAddr{{Addr: l.Addr.Addr(), Preferred: l.AddrPreferred.Sub(now), Valid: l.AddrValid.Sub(now)}}}}
	}
	return encode(m)
}

func TestParseReply(t *testing.T) {
	s := time.Second
	type ia struct {
		t1, t2           time.Duration
		prefix           string
		preferred, valid time.Duration
		status           dhcp6.StatusCode
	}
	build := func(pd *ia, top dhcp6.StatusCode, cid dhcp6.DUID) dhcp6.Message {
		m := dhcp6.Message{Type: dhcp6.Reply, ClientID: cid, ServerID: serverDUID}
		if top != 0 {
			m.Status = &dhcp6.Status{Code: top}
		}
		if pd != nil {
			o := dhcp6.IAPD{IAID: testIAID, T1: pd.t1, T2: pd.t2}
			if pd.prefix != "" {
				o.Prefixes = []dhcp6.IAPrefix{{Preferred: pd.preferred, Valid: pd.valid, Prefix: netip.MustParsePrefix(pd.prefix)}}
			}
			if pd.status != 0 {
				o.Status = &dhcp6.Status{Code: pd.status}
			}
			m.IAPD = []dhcp6.IAPD{o}
		}
		// Through the wire, as the client receives it.
		back, err := dhcp6.ParseMessage(encode(m))
		if err != nil {
			t.Fatal(err)
		}
		return back
	}
	for _, tc := range []struct {
		name       string
		m          dhcp6.Message
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
		{name: "NoPrefixAvail", m: build(&ia{status: dhcp6.NoPrefixAvail}, 0, testClientID),
			wantErr: &StatusError{Where: "IA_PD", Code: dhcp6.NoPrefixAvail}},
		{name: "NoBinding", m: build(&ia{status: dhcp6.NoBinding}, 0, testClientID),
			wantErr: &StatusError{Where: "IA_PD", Code: dhcp6.NoBinding}},
		{name: "UnspecFail", m: build(nil, dhcp6.UnspecFail, testClientID),
			wantErr: &StatusError{Where: "message", Code: dhcp6.UnspecFail}},
		{name: "no IA_PD", m: build(nil, 0, testClientID), wantErr: ErrMalformed},
		{name: "no client ID", m: build(&ia{prefix: "2001:db8:1::/56", preferred: 20 * s, valid: 30 * s}, 0, nil), wantErr: ErrMalformed},
		{name: "other client", m: build(&ia{prefix: "2001:db8:1::/56", preferred: 20 * s, valid: 30 * s}, 0, otherDUID), wantErr: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := parseReply(tc.m, testClientID, testIAID, t0)
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
	cid := testClientID
	f.Add(replyOf(Lease{Prefix: testPrefix, Preferred: t0.Add(time.Hour), Valid: t0.Add(2 * time.Hour),
		T1: t0.Add(30 * time.Minute), T2: t0.Add(48 * time.Minute), Addr: netip.PrefixFrom(testAddr, 128),
		AddrPreferred: t0.Add(time.Hour), AddrValid: t0.Add(2 * time.Hour),
		DNS: []netip.Addr{netip.MustParseAddr("2001:db8::53")}, Server: serverDUID}, t0, cid, testIAID))
	f.Add(replyOf(Lease{Prefix: testPrefix, Preferred: t0.Add(infinity), Valid: t0.Add(infinity),
		T1: t0.Add(infinity), T2: t0.Add(infinity), Server: serverDUID}, t0, cid, testIAID))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcp6.ParseMessage(b)
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

func mustParse(t *testing.T, b []byte) dhcp6.Message {
	t.Helper()
	m, err := dhcp6.ParseMessage(b)
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
