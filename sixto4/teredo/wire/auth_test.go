package wire

import (
	"net/netip"
	"testing"
)

func TestAuthValue(t *testing.T) {
	ip := Bubble(netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::2"))
	p := Packet{Auth: &Auth{ClientID: []byte("id"), Nonce: [8]byte{1, 2, 3}}, IPv6: ip}
	v, err := AuthValue([]byte("k"), p)
	if err != nil || len(v) != AuthValueLen {
		t.Fatalf("AuthValue = %x, %v", v, err)
	}
	p.Auth.AuthValue = v
	if !Authentic([]byte("k"), p) {
		t.Error("own value not authentic")
	}
	for name, change := range map[string]func(p *Packet){
		"nonce":        func(p *Packet) { p.Auth.Nonce[0]++ },
		"client id":    func(p *Packet) { p.Auth.ClientID = []byte("other") },
		"confirmation": func(p *Packet) { p.Auth.Confirmation = 1 },
		"origin":       func(p *Packet) { p.Origin = netip.MustParseAddrPort("192.0.2.1:1") },
		"packet":       func(p *Packet) { p.IPv6.HopLimit-- },
	} {
		q := p
		a := *p.Auth
		q.Auth = &a
		change(&q)
		if Authentic([]byte("k"), q) {
			t.Errorf("changed %s: still authentic", name)
		}
	}
	if Authentic([]byte("other key"), p) {
		t.Error("authentic under another key")
	}
}
