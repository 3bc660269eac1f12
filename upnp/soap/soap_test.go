package soap

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Seeds: bodies as upnpc (miniupnpc 2.2) and goupnp send them.
var seeds = []string{
	`<?xml version="1.0"?>` + "\r\n" + `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewRemoteHost></NewRemoteHost><NewExternalPort>5000</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>5000</NewInternalPort><NewInternalClient>192.168.1.10</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>libminiupnpc</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>` + "\r\n",
	`<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">
  <s:Body>
    <u:GetExternalIPAddress xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"></u:GetExternalIPAddress>
  </s:Body>
</s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><x>1</x></s:Header><s:Body><m:GetGenericPortMappingEntry xmlns:m="urn:schemas-upnp-org:service:WANIPConnection:1"><m:NewPortMappingIndex>0</m:NewPortMappingIndex></m:GetGenericPortMappingEntry></s:Body></s:Envelope>`,
}

func TestParseAction(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Action
		err  bool
	}{
		{"upnpc add", seeds[0], Action{ServiceType: "urn:schemas-upnp-org:service:WANIPConnection:1", Name: "AddPortMapping", Args: []Arg{
			{"NewRemoteHost", ""}, {"NewExternalPort", "5000"}, {"NewProtocol", "TCP"}, {"NewInternalPort", "5000"}, {"NewInternalClient", "192.168.1.10"},
			{"NewEnabled", "1"}, {"NewPortMappingDescription", "libminiupnpc"}, {"NewLeaseDuration", "0"}}}, false},
		{"goupnp no args", seeds[1], Action{ServiceType: "urn:schemas-upnp-org:service:WANIPConnection:2", Name: "GetExternalIPAddress"}, false},
		{"prefixed args, header", seeds[2], Action{ServiceType: "urn:schemas-upnp-org:service:WANIPConnection:1", Name: "GetGenericPortMappingEntry", Args: []Arg{{"NewPortMappingIndex", "0"}}}, false},
		{"no namespace", `<Envelope><Body><X/></Body></Envelope>`, Action{}, true},
		{"nested", `<Envelope><Body><u:X xmlns:u="urn:a"><A><B/></A></u:X></Body></Envelope>`, Action{}, true},
		{"two actions", `<Envelope><Body><u:X xmlns:u="urn:a"/><u:Y xmlns:u="urn:a"/></Body></Envelope>`, Action{}, true},
		{"empty body", `<Envelope><Body></Body></Envelope>`, Action{}, true},
		{"not xml", `hello`, Action{}, true},
		{"unclosed", `<Envelope><Body><u:X xmlns:u="urn:a">`, Action{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAction([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v does not wrap ErrMalformed", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestFaultRoundTrip(t *testing.T) {
	f := &Fault{Code: 718, Description: "ConflictInMappingEntry"}
	b, err := f.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseFault(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f, back); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
}

func TestSOAPAction(t *testing.T) {
	for _, h := range []string{`"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"`, `urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping`} {
		st, a, err := ParseSOAPAction(h)
		if err != nil || st != "urn:schemas-upnp-org:service:WANIPConnection:1" || a != "AddPortMapping" {
			t.Errorf("%s: %q %q %v", h, st, a, err)
		}
	}
	if _, _, err := ParseSOAPAction(`"urn:x"`); err == nil {
		t.Error("no # accepted")
	}
}

func FuzzParseAction(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAction(b)
		if err != nil {
			return
		}
		wire, err := a.Append(nil)
		if err != nil {
			t.Fatalf("accepted input cannot be re-encoded: %v", err)
		}
		back, err := ParseAction(wire)
		if err != nil {
			t.Fatalf("re-encoded action refused: %v\n%s", err, wire)
		}
		if diff := cmp.Diff(a, back); diff != "" {
			t.Fatalf("round trip changed the action (-want +got)\n%s", diff)
		}
	})
}

func FuzzParseFault(f *testing.F) {
	b, _ := (&Fault{Code: 714, Description: "NoSuchEntryInArray"}).Append(nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseFault(b)
		if err != nil {
			return
		}
		wire, err := x.Append(nil)
		if err != nil {
			return // a description with characters we refuse to send
		}
		back, err := ParseFault(wire)
		if err != nil || !cmp.Equal(x, back) {
			t.Fatalf("round trip: %v %s", err, cmp.Diff(x, back))
		}
	})
}
