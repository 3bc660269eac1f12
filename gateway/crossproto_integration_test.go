//go:build linux && !nolab

package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
)

// soapCall posts one WANIPConnection:1 action from host and returns the
// answer's status and body.
func soapCall(t *testing.T, l *lab.Lab, host, action, args string) (int, string) {
	t.Helper()
	body := `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>` +
		`<u:` + action + ` xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">` + args + `</u:` + action + `></s:Body></s:Envelope>`
	// The connection is made inside host (a socket stays in the namespace
	// it was made in); net/http's Transport would dial from a goroutine of
	// its own, outside it.
	var c net.Conn
	err := l.Do(host, func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(lab.LANAddr.Addr(), labgw.UPnPPort).String(), 2*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("SOAP %s from %s: %v", action, host, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "POST /ctl/IPConn HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: \"urn:schemas-upnp-org:service:WANIPConnection:1#%s\"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		lab.LANAddr.Addr(), labgw.UPnPPort, action, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		defer resp.Body.Close()
		var out []byte
		out, err = io.ReadAll(resp.Body)
		if err == nil {
			return resp.StatusCode, string(out)
		}
	}
	t.Fatalf("SOAP %s from %s: %v", action, host, err)
	return 0, ""
}

// TestCrossProtocol: UPnP, NAT-PMP and PCP share one table and one
// policy. A NAT-PMP mapping is seen by UPnP's GetSpecificPortMappingEntry;
// a UPnP mapping holds its port against NAT-PMP from another host, which
// gets another port.
func TestCrossProtocol(t *testing.T) {
	natpmpc := testenv.Tool(t, "natpmpc", "natpmpc")
	g := startGateway(t, "")
	gw := lab.LANAddr.Addr().String()

	out := g.mustRun(lab.LAN1, natpmpc, "-g", gw, "-a", "9200", "9200", "tcp", "3600")
	if !strings.Contains(out, "Mapped public port 9200 protocol TCP to local port 9200") {
		t.Fatalf("natpmpc -a:\n%s", out)
	}
	code, body := soapCall(t, g.l, lab.LAN1, "GetSpecificPortMappingEntry",
		"<NewRemoteHost></NewRemoteHost><NewExternalPort>9200</NewExternalPort><NewProtocol>TCP</NewProtocol>")
	if code != 200 || !strings.Contains(body, "<NewInternalClient>"+lan1.String()+"</NewInternalClient>") || !strings.Contains(body, "<NewInternalPort>9200</NewInternalPort>") {
		t.Fatalf("UPnP GetSpecificPortMappingEntry of a NAT-PMP mapping: %d\n%s", code, body)
	}

	out = g.upnpc(lab.LAN1, "-e", "cross", "-a", lan1.String(), "9300", "9300", "UDP")
	if !strings.Contains(out, "is redirected to internal "+lan1.String()+":9300") {
		t.Fatalf("upnpc -a:\n%s", out)
	}
	out = g.mustRun(lab.LAN2, natpmpc, "-g", gw, "-a", "9300", "9300", "udp", "3600")
	m := regexp.MustCompile(`Mapped public port (\d+) protocol UDP to local port 9300`).FindStringSubmatch(out)
	if m == nil || m[1] == "9300" {
		t.Fatalf("NAT-PMP from lan2 for a port UPnP gave lan1: want another port\n%s", out)
	}
	// And UPnP from lan2 for the NAT-PMP mapping's port: a conflict, which
	// IGD:2 names 729 ConflictWithOtherMechanisms when another protocol
	// holds the port.
	out = g.upnpc(lab.LAN2, "-a", lan2.String(), "9200", "9200", "TCP")
	if !strings.Contains(out, "729") {
		t.Fatalf("UPnP from lan2 for lan1's NAT-PMP port: want 729 ConflictWithOtherMechanisms\n%s", out)
	}
}
