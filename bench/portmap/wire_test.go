package main

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNATPMPMapAppend(t *testing.T) {
	got := natpmpMap{TCP: true, InternalPort: 5201, SuggestedExternalPort: 5202, Lifetime: 3600 * time.Second}.Append(nil)
	// RFC 6886 §3.3: version 0, opcode 2 (TCP), reserved, ports, lifetime.
	want := []byte{0, 2, 0, 0, 0x14, 0x51, 0x14, 0x52, 0, 0, 0x0e, 0x10}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestParseNATPMPMapResponse(t *testing.T) {
	b := []byte{0, 130, 0, 0, 0, 0, 0, 7, 0x14, 0x51, 0x14, 0x52, 0, 0, 0x0e, 0x10}
	r, err := parseNATPMPMapResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := natpmpMapResponse{Opcode: 130, Epoch: 7, InternalPort: 5201, MappedExternalPort: 5202, Lifetime: time.Hour}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if _, err := parseNATPMPMapResponse(b[:15]); !errors.Is(err, errMalformed) {
		t.Fatalf("short answer: got %v, want errMalformed", err)
	}
}

func TestPCPMapRoundTrip(t *testing.T) {
	req := pcpMap{Lifetime: time.Hour, ClientIP: netip.MustParseAddr("192.168.1.100"), Nonce: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		Protocol: protoTCP, InternalPort: 50000, SuggestedExternalPort: 50001}
	b := req.Append(nil)
	if len(b) != 60 {
		t.Fatalf("MAP request is %d bytes, want 60 (RFC 6887 §7.1, §11.1)", len(b))
	}
	if b[0] != 2 || b[1] != 1 || !bytes.Equal(b[8:24], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 100}) {
		t.Fatalf("header % x: want version 2, opcode 1, IPv4-mapped client address", b[:24])
	}
	if !bytes.Equal(b[44:60], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}) {
		t.Fatalf("suggested external address % x: want ::ffff:0.0.0.0", b[44:60])
	}
	// A server's answer has the same layout with R set, the result code
	// in byte 3 and the epoch in bytes 8-11 (RFC 6887 §7.2).
	ans := bytes.Clone(b)
	ans[1] |= 0x80
	copy(ans[4:24], make([]byte, 20))
	ans[7] = 100 // lifetime 100 s
	ans[11] = 9  // epoch
	copy(ans[44:], netip.MustParseAddr("::ffff:203.0.113.2").AsSlice())
	r, err := parsePCPMapResponse(ans)
	if err != nil {
		t.Fatal(err)
	}
	want := pcpMapResponse{Opcode: 0x81, Lifetime: 100 * time.Second, Epoch: 9, Nonce: req.Nonce, Protocol: protoTCP,
		InternalPort: 50000, AssignedExternalPort: 50001, AssignedExternalIP: netip.MustParseAddr("203.0.113.2")}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
}

func TestSOAPRequest(t *testing.T) {
	u, _ := url.Parse("http://192.168.1.1:5000/ctl/IPConn")
	const svc = "urn:schemas-upnp-org:service:WANIPConnection:2"
	req := string(addPortMapping(40000, netip.MustParseAddr("192.168.1.100"), 40000, time.Hour).appendRequest(nil, u, svc))
	for _, s := range []string{
		"POST /ctl/IPConn HTTP/1.1\r\n",
		"Host: 192.168.1.1:5000\r\n",
		`SOAPAction: "` + svc + `#AddPortMapping"` + "\r\n",
		"<NewExternalPort>40000</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>40000</NewInternalPort><NewInternalClient>192.168.1.100</NewInternalClient>",
		"<NewLeaseDuration>3600</NewLeaseDuration>",
	} {
		if !strings.Contains(req, s) {
			t.Errorf("request lacks %q:\n%s", s, req)
		}
	}
	head, body, _ := strings.Cut(req, "\r\n\r\n")
	if !strings.Contains(head, "Content-Length: "+strconv.Itoa(len(body))+"\r\n") {
		t.Errorf("Content-Length does not match the body's %d bytes:\n%s", len(body), head)
	}
}

func TestReadSOAPAnswer(t *testing.T) {
	tests := []struct {
		name string
		resp string
		code int // 0: success; -1: another error
	}{
		{"ok", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0},
		{"conflict", "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n" +
			`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>` +
			`<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, 718},
		{"not found", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := readSOAPAnswer(bufio.NewReader(strings.NewReader(tc.resp)))
			var f *soapFault
			switch {
			case tc.code == 0 && err != nil:
				t.Fatalf("got %v, want success", err)
			case tc.code > 0 && (!errors.As(err, &f) || f.Code != tc.code):
				t.Fatalf("got %v, want UPnP error %d", err, tc.code)
			case tc.code < 0 && (err == nil || errors.As(err, &f)):
				t.Fatalf("got %v, want a non-UPnP error", err)
			}
		})
	}
}

func TestWANIPConnection(t *testing.T) {
	// Shaped like miniupnpd 2.3.1's rootDesc.xml (IGD:2), trimmed.
	desc := `<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><controlURL>/ctl/IPConn</controlURL></service>
<service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType><controlURL>/ctl/IP6FCtl</controlURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>`
	u, svc, err := wanIPConnection([]byte(desc), "http://192.168.1.1:5000/rootDesc.xml")
	if err != nil {
		t.Fatal(err)
	}
	if u.String() != "http://192.168.1.1:5000/ctl/IPConn" || svc != "urn:schemas-upnp-org:service:WANIPConnection:2" {
		t.Fatalf("got %v %s", u, svc)
	}
	if _, _, err := wanIPConnection([]byte(`<root><device></device></root>`), "http://x/"); !errors.Is(err, errMalformed) {
		t.Fatalf("no service: got %v, want errMalformed", err)
	}
}

func TestSSDPLocation(t *testing.T) {
	loc, err := ssdpLocation([]byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: upnp:rootdevice\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n"))
	if err != nil || loc != "http://192.168.1.1:5000/rootDesc.xml" {
		t.Fatalf("got %q, %v", loc, err)
	}
}
