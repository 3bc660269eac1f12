package ssdp

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Seeds: M-SEARCHes as upnpc (miniupnpc 2.2), Windows and goupnp send
// them, and the device's own messages.
var seeds = []string{
	"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\n\r\n",
	"M-SEARCH * HTTP/1.1\r\nHost:239.255.255.250:1900\r\nST:urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nMan:\"ssdp:discover\"\r\nMX:3\r\n\r\n",
	"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: ssdp:all\r\nUSER-AGENT: Go/1.26 UPnP/1.1 goupnp\r\n\r\n",
	"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\nST: upnp:rootdevice\r\nUSN: uuid:x::upnp:rootdevice\r\n\r\n",
	"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:byebye\r\nUSN: uuid:x::upnp:rootdevice\r\n\r\n",
}

func TestParseSearch(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Search
		err  bool
	}{
		{"upnpc", seeds[0], Search{ST: "urn:schemas-upnp-org:device:InternetGatewayDevice:1", MX: 2 * time.Second, Multicast: true}, false},
		{"no spaces", seeds[1], Search{ST: "urn:schemas-upnp-org:device:InternetGatewayDevice:1", MX: 3 * time.Second, Multicast: true}, false},
		{"goupnp", seeds[2], Search{ST: "ssdp:all", MX: 2 * time.Second, Multicast: true, UserAgent: "Go/1.26 UPnP/1.1 goupnp"}, false},
		{"IPv6 link-local group", "M-SEARCH * HTTP/1.1\r\nHOST: [FF02::C]:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n", Search{ST: "ssdp:all", MX: time.Second, Multicast: true}, false},
		{"IPv6 site-local group", "M-SEARCH * HTTP/1.1\r\nHOST: [ff05::c]:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n", Search{ST: "ssdp:all", MX: time.Second, Multicast: true}, false},
		{"IPv6 unicast", "M-SEARCH * HTTP/1.1\r\nHOST: [2001:db8::1]:1900\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n", Search{ST: "ssdp:all"}, false},
		{"no MX multicast", "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n", Search{}, true},
		{"bad MAN", "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: discover\r\nMX: 1\r\nST: ssdp:all\r\n\r\n", Search{}, true},
		{"notify", seeds[4], Search{}, true},
		{"garbage", "\x00\x01", Search{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSearch([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v does not wrap ErrMalformed", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestAnnounceRoundTrip(t *testing.T) {
	a := Announce{Target: "upnp:rootdevice", USN: "uuid:1::upnp:rootdevice", Location: "http://192.168.1.1:5000/rootDesc.xml", MaxAge: 30 * time.Minute, Server: "Linux/6 UPnP/2.0 gateway/dev", BootID: 7, ConfigID: 1}
	for _, m := range []Message{a.Response(), a.Notify("ssdp:alive"), a.Notify("ssdp:byebye")} {
		b, err := m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(m, back); diff != "" {
			t.Fatalf("(-want +got)\n%s", diff)
		}
	}
	s := Search{ST: "ssdp:all", MX: time.Second, Multicast: true}
	b, _ := s.Message("").Append(nil)
	back, err := ParseSearch(b)
	if err != nil || back != s {
		t.Fatalf("search round trip: %+v %v", back, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		wire, err := m.Append(nil)
		if err != nil {
			t.Fatalf("accepted input cannot be re-encoded: %v", err)
		}
		back, err := Parse(wire)
		if err != nil {
			t.Fatalf("re-encoded message refused: %v\n%q", err, wire)
		}
		if diff := cmp.Diff(m, back); diff != "" {
			t.Fatalf("round trip changed the message (-want +got)\n%s", diff)
		}
		SearchOf(m) // must not panic
	})
}
