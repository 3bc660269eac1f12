package dhcp

import (
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestReservationJSON(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:5e:10:00:01")
	r := Reservation{MAC: mac, Addr: netip.MustParseAddr("192.168.1.50"), Hostname: "tv"}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"mac":"02:00:5e:10:00:01","addr":"192.168.1.50","hostname":"tv"}`; string(b) != want {
		t.Fatalf("marshal = %s, want %s", b, want)
	}
	var back Reservation
	if err := json.Unmarshal(b, &back); err != nil || back.MAC.String() != mac.String() || back.Addr != r.Addr || back.Hostname != "tv" {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"mac":"nope","addr":"192.168.1.5"}`), &back); err == nil || !strings.Contains(err.Error(), "not an Ethernet address") {
		t.Fatalf("bad mac: %v", err)
	}
}
