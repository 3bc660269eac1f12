package pd

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/dhcp/dhcp6"
)

var std = grant{prefix: testPrefix, preferred: 100 * time.Second, valid: 200 * time.Second, t1: 50 * time.Second, t2: 80 * time.Second, addr: testAddr}

func TestSolicitRequestRenew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), Config{HintLen: 56, Address: true}, standard(std))
		l := h.note(time.Minute, "first lease")
		start := time.Now()
		if l.Prefix != testPrefix || l.Addr.Addr() != testAddr {
			t.Fatalf("lease %v %v, want %v %v", l.Prefix, l.Addr, testPrefix, testAddr)
		}
		if !l.Valid.Equal(start.Add(200*time.Second)) || !l.Preferred.Equal(start.Add(100*time.Second)) || !l.T1.Equal(start.Add(50*time.Second)) {
			t.Errorf("lease times %v %v %v, want from a start at %v", l.Preferred, l.Valid, l.T1, start)
		}
		if !h.net.hasAddr(l.Addr) {
			t.Errorf("IA_NA address not on the link")
		}
		msgs := h.srv.messages()
		if len(msgs) != 2 || msgs[0].m.Type != dhcp6.Solicit || msgs[1].m.Type != dhcp6.Request {
			t.Fatalf("messages %v, want Solicit, Request", msgs)
		}
		sol := msgs[0].m
		if p := sol.prefixes(); len(p) != 1 || p[0].Prefix.String() != "::/56" {
			t.Errorf("Solicit IA_PD hint %v, want ::/56", p)
		}
		if sol.ServerID != nil || sol.IANA == nil {
			t.Errorf("Solicit: server ID %v, IA_NA %v", sol.ServerID, sol.IANA)
		}
		if sid := msgs[1].m.ServerID; !bytes.Equal(sid, serverDUID) {
			t.Errorf("Request to server %v, want %v", sid, serverDUID)
		}
		if d, ok := h.c.st.DUID, true; !ok || len(d) == 0 {
			t.Errorf("no DUID")
		}

		renewed := h.note(time.Minute, "renewal")
		if at := time.Since(start); at != 50*time.Second {
			t.Errorf("renewed at %v, want T1 = 50s", at)
		}
		if !renewed.Valid.Equal(start.Add(250 * time.Second)) {
			t.Errorf("renewed lease valid until %v, want %v", renewed.Valid, start.Add(250*time.Second))
		}
		ren := h.srv.messages()[2].m
		if ren.Type != dhcp6.Renew || ren.ServerID == nil {
			t.Errorf("at T1: %v with server ID %v, want Renew with it", ren.Type, ren.ServerID)
		}
		if got, ok := h.c.Lease(); !ok || got.Prefix != testPrefix {
			t.Errorf("Lease() = %v, %v", got.Prefix, ok)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRebindAtT2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), Config{HintLen: 56}, standard(std))
		h.note(time.Minute, "first lease")
		start := time.Now()
		// The server goes quiet to Renew; another one answers Rebind.
		other := std
		other.duid = otherDUID
		h.srv.setAnswer(func(m msg) [][]byte {
			if m.Type == dhcp6.Rebind {
				return [][]byte{other.reply(m, dhcp6.Reply)}
			}
			return nil
		})
		l := h.note(2*time.Minute, "rebound lease")
		if at := time.Since(start); at != 80*time.Second {
			t.Errorf("rebound at %v, want T2 = 80s", at)
		}
		if renews := h.srv.count(dhcp6.Renew); renews < 2 {
			t.Errorf("%d Renews between T1 and T2, want retransmissions", renews)
		}
		var reb msg
		for _, g := range h.srv.messages() {
			if g.m.Type == dhcp6.Rebind {
				reb = g.m
			}
		}
		if reb.ServerID != nil {
			t.Errorf("Rebind names a server")
		}
		if p := reb.prefixes(); len(p) != 1 || p[0].Prefix.String() != testPrefix.String() {
			t.Errorf("Rebind asks for %v, want %v", p, testPrefix)
		}
		// The next Renew goes to the server that answered the Rebind.
		h.srv.setAnswer(standard(other))
		h.note(2*time.Minute, "renewal after rebind")
		msgs := h.srv.messages()
		if last := msgs[len(msgs)-1].m; last.Type != dhcp6.Renew || !bytes.Equal(last.ServerID, otherDUID) {
			t.Errorf("after Rebind: %v to %v, want Renew to %v", last.Type, last.ServerID, otherDUID)
		}
		_ = l
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestExpiryWithdraws(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), Config{HintLen: 56, Address: true}, standard(std))
		l := h.note(time.Minute, "first lease")
		start := time.Now()
		h.srv.setAnswer(nil)
		w := h.note(5*time.Minute, "withdrawal")
		if w.Prefix.IsValid() {
			t.Fatalf("got %v, want a withdrawal", w.Prefix)
		}
		if at := time.Since(start); at != 200*time.Second {
			t.Errorf("withdrawn at %v, want at the end of the valid lifetime, 200s", at)
		}
		if _, ok := h.c.Lease(); ok {
			t.Errorf("Lease() still holds one")
		}
		if h.net.hasAddr(l.Addr) {
			t.Errorf("the IA_NA address is still on the link")
		}
		// Then it solicits again, asking for the old prefix.
		time.Sleep(5 * time.Second)
		msgs := h.srv.messages()
		last := msgs[len(msgs)-1].m
		if last.Type != dhcp6.Solicit {
			t.Fatalf("after expiry: %v, want Solicit", last.Type)
		}
		if p := last.prefixes(); len(p) != 1 || p[0].Prefix.String() != testPrefix.String() {
			t.Errorf("Solicit hint %v, want the old prefix %v", p, testPrefix)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// crash ends Run as a failed socket would: no Release, the state stays.
func (h *harness) crash() {
	h.net.Close()
	if err := <-h.done; err == nil {
		h.t.Fatalf("Run returned nil after its socket failed")
	}
	h.cancel()
}

func TestRestartRebinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := newHarness(t, dir, Config{HintLen: 56}, standard(std))
		first := h.note(time.Minute, "first lease")
		h.crash()
		duid := h.c.st.DUID

		time.Sleep(10 * time.Second)
		h2 := newHarness(t, dir, Config{HintLen: 56}, nil)
		// Nothing is reported before a server confirms the lease.
		time.Sleep(2 * time.Second)
		if _, ok := h2.c.Lease(); ok || len(h2.notes) > 0 {
			t.Fatalf("a remembered lease was reported before any Reply")
		}
		msgs := h2.srv.messages()
		if len(msgs) == 0 || msgs[0].m.Type != dhcp6.Rebind {
			t.Fatalf("after a restart: %v, want Rebind", msgs)
		}
		if p := msgs[0].m.prefixes(); len(p) != 1 || p[0].Prefix.String() != testPrefix.String() {
			t.Errorf("Rebind for %v, want %v", p, testPrefix)
		}
		if got := msgs[0].m.ClientID; string(got) != string(duid) {
			t.Errorf("DUID changed across the restart")
		}
		h2.srv.setAnswer(standard(std))
		l := h2.note(time.Minute, "confirmed lease")
		if l.Prefix != first.Prefix {
			t.Errorf("after restart %v, want %v", l.Prefix, first.Prefix)
		}
		if err := h2.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRestartUnansweredSolicitsWithHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := newHarness(t, dir, Config{HintLen: 56}, standard(std))
		h.note(time.Minute, "first lease")
		h.crash()
		h2 := newHarness(t, dir, Config{HintLen: 56}, nil)
		time.Sleep(rebootRebindWait + 5*time.Second)
		msgs := h2.srv.messages()
		last := msgs[len(msgs)-1].m
		if last.Type != dhcp6.Solicit {
			t.Fatalf("%v after an unanswered Rebind, want Solicit", last.Type)
		}
		if p := last.prefixes(); len(p) != 1 || p[0].Prefix.String() != testPrefix.String() {
			t.Errorf("Solicit hint %v, want %v", p, testPrefix)
		}
		if len(h2.notes) > 0 {
			t.Errorf("notified without a confirmation")
		}
		if err := h2.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRestartExpiredSolicitsWithHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := newHarness(t, dir, Config{HintLen: 48}, standard(std))
		h.note(time.Minute, "first lease")
		h.crash()
		time.Sleep(300 * time.Second) // past the valid lifetime
		h2 := newHarness(t, dir, Config{HintLen: 48}, standard(std))
		h2.note(time.Minute, "new lease")
		first := h2.srv.messages()[0].m
		if first.Type != dhcp6.Solicit {
			t.Fatalf("%v with an expired lease, want Solicit", first.Type)
		}
		if p := first.prefixes(); len(p) != 1 || p[0].Prefix.String() != testPrefix.String() {
			t.Errorf("Solicit hint %v, want the old prefix %v", p, testPrefix)
		}
		if err := h2.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReleaseOnShutdown(t *testing.T) {
	for _, answered := range []bool{true, false} {
		t.Run(map[bool]string{true: "answered", false: "unanswered"}[answered], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				h := newHarness(t, dir, Config{HintLen: 56, Address: true}, standard(std))
				l := h.note(time.Minute, "first lease")
				if !answered {
					h.srv.setAnswer(nil)
				}
				start := time.Now()
				if err := h.stop(); err != nil {
					t.Fatal(err)
				}
				if took := time.Since(start); took > 3*time.Second {
					t.Errorf("shutdown took %v, want at most ReleaseTimeout 3s", took)
				}
				rel := h.srv.messages()[2].m
				if rel.Type != dhcp6.Release || !bytes.Equal(rel.ServerID, serverDUID) {
					t.Fatalf("on shutdown: %v to %v, want Release to the server", rel.Type, rel.ServerID)
				}
				if p := rel.prefixes(); len(p) != 1 || p[0].Prefix.String() != testPrefix.String() {
					t.Errorf("Release of %v, want %v", p, testPrefix)
				}
				if w := <-h.notes; w.Prefix.IsValid() {
					t.Errorf("after release: notified %v, want a withdrawal", w.Prefix)
				}
				if h.net.hasAddr(l.Addr) {
					t.Errorf("address left on the link after release")
				}
				st, err := loadState(dir)
				if err != nil || st.Lease != nil || st.Hint != testPrefix {
					t.Errorf("state after release: %+v, %v; want no lease, hint %v", st, err, testPrefix)
				}
			})
		})
	}
}

func TestStatusCodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The first Advertise says NoPrefixAvail (ignored, RFC 8415
		// 18.2.9); the Request's Reply says it too (back to Solicit);
		// then the server has one.
		noPrefix := std
		noPrefix.status = &dhcp6.Status{Code: dhcp6.NoPrefixAvail}
		var n int
		h := newHarness(t, t.TempDir(), Config{}, func(m msg) [][]byte {
			n++
			switch n {
			case 1:
				return [][]byte{noPrefix.reply(m, dhcp6.Advertise)}
			case 2:
				return [][]byte{std.reply(m, dhcp6.Advertise)}
			case 3:
				return [][]byte{noPrefix.reply(m, dhcp6.Reply)}
			}
			return standard(std)(m)
		})
		h.note(time.Minute, "lease")
		var types []dhcp6.MessageType
		for _, g := range h.srv.messages() {
			types = append(types, g.m.Type)
		}
		want := []dhcp6.MessageType{dhcp6.Solicit, dhcp6.Solicit, dhcp6.Request, dhcp6.Solicit, dhcp6.Request}
		if len(types) != len(want) {
			t.Fatalf("messages %v, want %v", types, want)
		}
		for i := range want {
			if types[i] != want[i] {
				t.Fatalf("messages %v, want %v", types, want)
			}
		}
		if d := h.c.Drops()["rejected"]; d != 1 {
			t.Errorf("rejected drops %d, want 1 (the NoPrefixAvail Advertise)", d)
		}
		// A Renew answered with NoBinding makes the client Request.
		noBinding := std
		noBinding.status = &dhcp6.Status{Code: dhcp6.NoBinding}
		h.srv.setAnswer(func(m msg) [][]byte {
			if m.Type == dhcp6.Renew {
				return [][]byte{noBinding.reply(m, dhcp6.Reply)}
			}
			return standard(std)(m)
		})
		h.note(time.Minute, "lease after NoBinding")
		msgs := h.srv.messages()
		if got := msgs[len(msgs)-1].m.Type; got != dhcp6.Request {
			t.Errorf("after NoBinding to Renew: %v, want Request", got)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMalformedCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t.TempDir(), Config{}, func(m msg) [][]byte {
			good := std.reply(m, dhcp6.Advertise)
			if m.Type != dhcp6.Solicit {
				good = std.reply(m, dhcp6.Reply)
			}
			wrongXID := append([]byte(nil), good...)
			wrongXID[1] ^= 0xff
			return [][]byte{
				{0x07, 1},          // too short
				good[:len(good)-3], // an option cut short
				wrongXID,           // another exchange's
				append([]byte{}, 7, good[1], good[2], good[3]), // a Reply with no options
				good,
			}
		})
		h.note(time.Minute, "lease")
		d := h.c.Drops()
		// Per exchange (Solicit, Request): 2 malformed, 1 of another
		// transaction; the empty Reply is of the wrong type for the
		// Solicit and lacks our client ID for the Request.
		want := map[string]uint64{"malformed": 4, "xid": 2, "type": 1, "rejected": 1}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("drops (-want +got):\n%s", diff)
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDUIDKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := newHarness(t, dir, Config{}, standard(std))
		h.note(time.Minute, "lease")
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, stateFile))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := loadState(dir)
		want := []byte{0, 3, 0, 1, 0x02, 0, 0, 0, 0, 0x42} // DUID-LL, Ethernet, testMAC
		if string(st.DUID) != string(want) {
			t.Errorf("stored DUID %x, want DUID-LL of the MAC %x\n%s", st.DUID, want, b)
		}
	})
}
