package wire

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The packets of testdata/README.md, decoded field by field.
func TestMiredoServerRA(t *testing.T) {
	b := unhex(t, `00 01 00 00 01 02 03 04 05 06 07 08 00 00 00 7a 9a 39 cc 9b fd 60 00 00 00 00 38 3a ff
		fe 80 00 00 00 00 00 00 80 00 f2 27 34 ff 8e f5 fe 80 00 00 00 00 00 00 08 09 09 09 09 09 09 09
		86 00 72 28 00 00 00 00 00 00 00 00 00 00 07 d0 03 04 40 40 ff ff ff ff ff ff ff ff 00 00 00 00
		20 01 00 00 cb 00 71 0a 00 00 00 00 00 00 00 00 05 01 00 00 00 00 05 00`)
	ra, err := ParseQualificationRA(b)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Auth == nil || ra.Auth.Nonce != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Errorf("nonce not echoed: %+v", ra.Auth)
	}
	if want := netip.MustParseAddrPort("198.51.100.2:34149"); ra.Origin != want {
		t.Errorf("origin %v, want %v", ra.Origin, want)
	}
	if p, _ := ra.TeredoPrefix(); p != netip.MustParsePrefix("2001:0:cb00:710a::/64") {
		t.Errorf("prefix %v", p)
	}
	if ra.Dst != netip.MustParseAddr("fe80::809:909:909:909") || ra.RA.RetransTimer != 2*time.Second {
		t.Errorf("RA %+v", ra)
	}
	if a := ra.Address(0); a.Server != netip.MustParseAddr("203.0.113.10") || a.Mapped != ra.Origin {
		t.Errorf("address %+v", a)
	}
	again, err := ra.Append(nil)
	if err != nil || string(again) != string(b) {
		t.Errorf("re-encoded differently (%v):\n% x\n% x", err, again, b)
	}
}

func TestMiredoClientRS(t *testing.T) {
	b := unhex(t, `00 01 00 00 07 66 d2 a2 f5 dc 9e d1 00 60 00 00 00 00 08 3a ff fe 80 00 00 00 00 00 00
		00 00 ff ff ff ff ff ff ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 02 85 00 7d 37 00 00 00 00`)
	rs, err := ParseQualificationRS(b)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Cone() {
		t.Error("Miredo asked for the cone test")
	}
	if rs.Auth == nil || rs.Auth.Nonce != [8]byte{0x07, 0x66, 0xd2, 0xa2, 0xf5, 0xdc, 0x9e, 0xd1} {
		t.Errorf("nonce %+v", rs.Auth)
	}
	if rs.Src != netip.MustParseAddr("fe80::ffff:ffff:ffff") || rs.Dst != AllRouters {
		t.Errorf("RS %+v", rs)
	}
	again, err := rs.Append(nil)
	if err != nil || string(again) != string(b) {
		t.Errorf("re-encoded differently (%v):\n% x\n% x", err, again, b)
	}
}
