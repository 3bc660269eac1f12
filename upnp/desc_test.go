package upnp

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestDescriptionsWellFormed(t *testing.T) {
	u := deviceUUIDs([16]byte{1, 2, 3})
	docs := map[string][]byte{
		"igd1": rootDesc(1, u, "dev"), "igd2": rootDesc(2, u, "dev"),
		"ip1": scpd(ipConnActions, ipConnVars, 1), "ip2": scpd(ipConnActions, ipConnVars, 2),
		"cmn": scpd(commonActions, commonVars, 1), "fc": scpd(fcActions, fcVars, 1),
	}
	for name, b := range docs {
		d := xml.NewDecoder(strings.NewReader(string(b)))
		for {
			if _, err := d.Token(); err != nil {
				if err.Error() != "EOF" {
					t.Errorf("%s: %v", name, err)
				}
				break
			}
		}
	}
	if s := string(docs["igd1"]); !strings.Contains(s, TypeWANIPConn1) || strings.Contains(s, ":2<") {
		t.Errorf("IGD:1 description holds v2 types")
	}
	if s := string(docs["ip1"]); strings.Contains(s, "AddAnyPortMapping") {
		t.Errorf("WANIPConnection:1 SCPD lists a v2 action")
	}
	for ua, want := range map[string]bool{"Microsoft-Windows/10.0 UPnP/1.0": true, "FDSSDP": true, "Go-http-client/1.1": false, "miniupnpc/2.2": false} {
		if isMicrosoft(ua) != want {
			t.Errorf("isMicrosoft(%q) != %v", ua, want)
		}
	}
}
