package dhcp6

// Generates testdata/golden/*.bin with github.com/insomniacslk/dhcp's
// dhcpv6 (an independent implementation), so that our codec is checked
// against it. Run once: go test ./dhcp/dhcp6 -run TestGenGolden -gen.
// Kept in the history (commit "dhcp6: golden messages") after the
// dependency was dropped.

import (
	"encoding/binary"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

var gen = flag.Bool("gen", false, "write testdata/golden with insomniacslk/dhcp")

func TestGenGolden(t *testing.T) {
	if !*gen {
		t.Skip("-gen not set")
	}
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}
	cid := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}
	llt := &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: 0x30c2a1b0, LinkLayerAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}}
	en := &dhcpv6.DUIDEN{EnterpriseNumber: 2495, EnterpriseIdentifier: []byte{0xde, 0xad, 0xbe, 0xef}}
	uuid := &dhcpv6.DUIDUUID{UUID: [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}}
	xid := dhcpv6.TransactionID{0xa1, 0xb2, 0xc3}
	iaid := [4]byte{0, 0, 0, 1}
	pfx := func(s string) *net.IPNet { _, n, _ := net.ParseCIDR(s); return n }
	s := time.Second
	sol := func(m *dhcpv6.Message) *dhcpv6.Message { return m }

	msgs := map[string]*dhcpv6.Message{}
	{ // Solicit: what pd sends first, a /56 hint and an empty IA_NA.
		m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit, TransactionID: xid}
		m.AddOption(dhcpv6.OptClientID(cid))
		m.AddOption(&dhcpv6.OptIANA{IaId: iaid})
		pd := &dhcpv6.OptIAPD{IaId: iaid}
		pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(56, 128)}})
		m.AddOption(pd)
		m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionSolMaxRT))
		m.AddOption(dhcpv6.OptElapsedTime(0))
		msgs["solicit"] = sol(m)
	}
	{ // Advertise: everything a good server gives.
		m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeAdvertise, TransactionID: xid}
		m.AddOption(dhcpv6.OptClientID(cid))
		m.AddOption(dhcpv6.OptServerID(llt))
		na := &dhcpv6.OptIANA{IaId: iaid, T1: 1800 * s, T2: 2880 * s}
		na.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8:0:1::100"), PreferredLifetime: 3600 * s, ValidLifetime: 7200 * s})
		m.AddOption(na)
		pd := &dhcpv6.OptIAPD{IaId: iaid, T1: 1800 * s, T2: 2880 * s}
		pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: pfx("2001:db8:1::/56"), PreferredLifetime: 3600 * s, ValidLifetime: 7200 * s})
		m.AddOption(pd)
		m.AddOption(dhcpv6.OptPreference(255))
		m.AddOption(dhcpv6.OptDNS(net.ParseIP("2001:db8::53"), net.ParseIP("2001:db8::54")))
		var rt [4]byte
		binary.BigEndian.PutUint32(rt[:], 3600)
		m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionSolMaxRT, OptionData: rt[:]})
		msgs["advertise"] = m
	}
	{ // Reply refusing both IAs, with statuses nested in them.
		m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: xid}
		m.AddOption(dhcpv6.OptClientID(cid))
		m.AddOption(dhcpv6.OptServerID(en))
		na := &dhcpv6.OptIANA{IaId: iaid}
		na.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "no addresses"})
		m.AddOption(na)
		pd := &dhcpv6.OptIAPD{IaId: iaid}
		pd.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoPrefixAvail, StatusMessage: "no prefixes"})
		m.AddOption(pd)
		m.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess, StatusMessage: "ok"})
		msgs["reply-noprefix"] = m
	}
	{ // Reply to a rapid-commit Solicit: infinite lifetimes, a status in
		// the IAPREFIX, an unknown option, a DUID-UUID.
		m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: xid}
		m.AddOption(dhcpv6.OptClientID(cid))
		m.AddOption(dhcpv6.OptServerID(uuid))
		pd := &dhcpv6.OptIAPD{IaId: iaid, T1: 0xffffffff * s, T2: 0xffffffff * s}
		p := &dhcpv6.OptIAPrefix{Prefix: pfx("2001:db8:ff00::/40"), PreferredLifetime: 0xffffffff * s, ValidLifetime: 0xffffffff * s}
		p.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess, StatusMessage: "yours"})
		pd.Options.Add(p)
		m.AddOption(pd)
		m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
		m.AddOption(&dhcpv6.OptionGeneric{OptionCode: 65000, OptionData: []byte("kept")})
		msgs["reply-rapid"] = m
	}
	for _, typ := range []dhcpv6.MessageType{dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeRelease} {
		m := &dhcpv6.Message{MessageType: typ, TransactionID: xid}
		m.AddOption(dhcpv6.OptClientID(cid))
		if typ != dhcpv6.MessageTypeRebind {
			m.AddOption(dhcpv6.OptServerID(llt))
		}
		na := &dhcpv6.OptIANA{IaId: iaid}
		na.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8:0:1::100")})
		m.AddOption(na)
		pd := &dhcpv6.OptIAPD{IaId: iaid}
		pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: pfx("2001:db8:1::/56")})
		m.AddOption(pd)
		if typ != dhcpv6.MessageTypeRelease {
			m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionSolMaxRT))
		}
		m.AddOption(dhcpv6.OptElapsedTime(1500 * time.Millisecond))
		msgs[strings.ToLower(typ.String())] = m
	}
	for name, m := range msgs {
		if err := os.WriteFile(filepath.Join("testdata/golden", name+".bin"), m.ToBytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
