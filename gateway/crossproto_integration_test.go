//go:build linux && !nolab

package gateway_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
)

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
	ctl := fmt.Sprintf("http://%s:%d/ctl/IPConn", lab.LANAddr.Addr(), labgw.UPnPPort)
	got, code := soapCall(t, g.l, lab.LAN1, ctl, "urn:schemas-upnp-org:service:WANIPConnection:1", "GetSpecificPortMappingEntry",
		"NewRemoteHost", "", "NewExternalPort", "9200", "NewProtocol", "TCP")
	if code != 0 || got["NewInternalClient"] != lan1.String() || got["NewInternalPort"] != "9200" {
		t.Fatalf("UPnP GetSpecificPortMappingEntry of a NAT-PMP mapping: fault %d, %v", code, got)
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
