//go:build linux && !nolab

package gateway_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
	"gateway/nat44"
	"gateway/upnp/gena"
	"gateway/upnp/soap"
)

const (
	svcIP2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
	svcFC1 = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
)

// nsClient is an HTTP client whose connections start in host's
// namespace.
func nsClient(l *lab.Lab, host string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = l.Do(host, func() error {
				c, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
}

// soapCall invokes action of service at the control URL ctl from host,
// with args as name, value pairs; it returns the response's arguments,
// or the UPnP error code of a fault.
func soapCall(t *testing.T, l *lab.Lab, host, ctl, service, action string, args ...string) (map[string]string, int) {
	t.Helper()
	a := soap.Action{ServiceType: service, Name: action}
	for i := 0; i+1 < len(args); i += 2 {
		a.Args = append(a.Args, soap.Arg{Name: args[i], Value: args[i+1]})
	}
	body, err := a.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", ctl, bytes.NewReader(body))
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	req.Header.Set("SOAPACTION", `"`+service+"#"+action+`"`)
	resp, err := nsClient(l, host).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", action, ctl, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		f, err := soap.ParseFault(b)
		if err != nil {
			t.Fatalf("%s: HTTP %d, not a fault: %v\n%s", action, resp.StatusCode, err, b)
		}
		return nil, f.Code
	}
	r, err := soap.ParseAction(b)
	if err != nil || r.Name != action+"Response" {
		t.Fatalf("%s: response %q: %v", action, b, err)
	}
	out := map[string]string{}
	for _, x := range r.Args {
		out[x.Name] = x.Value
	}
	return out, 0
}

// msearch6 sends an M-SEARCH for st from host to the IPv6 link-local
// SSDP group on its interface and returns the first answer. The whole
// exchange runs in host's namespace, where the zone names its interface.
func msearch6(l *lab.Lab, host, st string) (answer string, err error) {
	err = l.Do(host, func() error {
		c, err := net.ListenUDP("udp6", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		msg := "M-SEARCH * HTTP/1.1\r\nHOST: [FF02::C]:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: " + st + "\r\n\r\n"
		if _, err := c.WriteToUDP([]byte(msg), &net.UDPAddr{IP: net.ParseIP("ff02::c"), Port: 1900, Zone: lab.HostIf}); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 2048)
		n, _, err := c.ReadFromUDP(buf)
		answer = string(buf[:n])
		return err
	})
	return answer, err
}

// TestUPnPIPv6Pinhole: lan1 finds the IGD over IPv6 SSDP and opens,
// updates and deletes a pinhole for its own IPv6 address with
// WANIPv6FirewallControl:1 over IPv6; traffic from the internet gets in
// only while the pinhole is open; a pinhole for lan2's address is
// refused; the packet counters, which the datapath does not keep, are
// not made up.
func TestUPnPIPv6Pinhole(t *testing.T) {
	testenv.Root(t)
	g := startGateway(t, "")
	lan16, lan26 := lab.LAN1Addr6.Addr(), lab.LAN2Addr6.Addr()
	tcpServer(t, g.l, lab.LAN1, hostPort(lan16, 8000))
	wantNoTCP(t, g.l, lab.Public, hostPort(lan16, 8000))

	var answer string
	eventually(t, "an IPv6 M-SEARCH is answered", func() (err error) {
		answer, err = msearch6(g.l, lab.LAN1, svcFC1)
		return err
	})
	base := "http://" + hostPort(lab.LANAddr6.Addr(), labgw.UPnPPort)
	if !strings.Contains(answer, "LOCATION: "+base+"/igd2.xml") || !strings.Contains(answer, "ST: "+svcFC1) {
		t.Fatalf("IPv6 M-SEARCH answer:\n%s", answer)
	}
	resp, err := nsClient(g.l, lab.LAN1).Get(base + "/igd2.xml")
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(desc), "<controlURL>/ctl/IP6FCtl</controlURL>") {
		t.Fatalf("description over IPv6: %d\n%s", resp.StatusCode, desc)
	}
	ctl := base + "/ctl/IP6FCtl"

	pin := func(host netip.Addr) (map[string]string, int) {
		return soapCall(t, g.l, lab.LAN1, ctl, svcFC1, "AddPinhole", "RemoteHost", "", "RemotePort", "0",
			"InternalClient", host.String(), "InternalPort", "8000", "Protocol", "6", "LeaseTime", "3600")
	}
	out, code := pin(lan16)
	if code != 0 {
		t.Fatalf("AddPinhole for lan1's own address: error %d", code)
	}
	id := out["UniqueID"]
	// Nothing through it yet: no evidence that it works (709).
	if _, code := soapCall(t, g.l, lab.LAN1, ctl, svcFC1, "CheckPinholeWorking", "UniqueID", id); code != 709 {
		t.Errorf("CheckPinholeWorking before any traffic: error %d, want 709", code)
	}
	wantTCP(t, g.l, lab.Public, hostPort(lan16, 8000), "lan1 saw [2001:db8:100::")
	// Now the kernel's counter of the pinhole has the connection's SYN.
	if out, code := soapCall(t, g.l, lab.LAN1, ctl, svcFC1, "GetPinholePackets", "UniqueID", id); code != 0 || out["PinholePackets"] == "0" || out["PinholePackets"] == "" {
		t.Errorf("GetPinholePackets after a connection: %v, error %d; want a count", out, code)
	}
	if out, code := soapCall(t, g.l, lab.LAN1, ctl, svcFC1, "CheckPinholeWorking", "UniqueID", id); code != 0 || out["IsWorking"] != "1" {
		t.Errorf("CheckPinholeWorking after a connection: %v, error %d; want IsWorking 1", out, code)
	}

	if _, code := soapCall(t, g.l, lab.LAN1, ctl, svcFC1, "UpdatePinhole", "UniqueID", id, "NewLeaseTime", "7200"); code != 0 {
		t.Errorf("UpdatePinhole: error %d", code)
	}
	if _, code := pin(lan26); code != 606 {
		t.Errorf("AddPinhole for lan2's address from lan1: error %d, want 606", code)
	}
	if _, code := soapCall(t, g.l, lab.LAN1, ctl, svcFC1, "DeletePinhole", "UniqueID", id); code != 0 {
		t.Fatalf("DeletePinhole: error %d", code)
	}
	wantNoTCP(t, g.l, lab.Public, hostPort(lan16, 8000))
	if _, code := soapCall(t, g.l, lab.LAN1, ctl, svcFC1, "DeletePinhole", "UniqueID", id); code != 704 {
		t.Errorf("DeletePinhole again: error %d, want 704", code)
	}

	// DNS rebinding over IPv6: a foreign Host is refused.
	req, _ := http.NewRequest("GET", base+"/igd2.xml", nil)
	req.Host = "rebind.example:5000"
	if resp, err := nsClient(g.l, lab.LAN1).Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Host over IPv6: %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// portMappingList is GetListOfPortMappings' NewPortListing.
type portMappingList struct {
	Entries []struct {
		ExternalPort   int    `xml:"NewExternalPort"`
		Protocol       string `xml:"NewProtocol"`
		InternalClient string `xml:"NewInternalClient"`
		InternalPort   int    `xml:"NewInternalPort"`
	} `xml:"PortMappingEntry"`
}

// TestUPnPRanges: 2,000 UPnP mappings of one host, listed with
// GetListOfPortMappings (NumberOfPorts honoured, the spec's XML list)
// and deleted with DeletePortMappingRange, over HTTP and SOAP; another
// host sees and deletes none of them.
func TestUPnPRanges(t *testing.T) {
	testenv.Root(t)
	const n, first = 2000, 20000
	g := startWith(t, func(l *lab.Lab, extra string) string {
		return strings.Replace(labgw.Config(l, extra), "config nat 'nat'\n", "config nat 'nat'\n\toption host_limit '3000'\n", 1)
	}, "", lab.LANHosts...)
	ctl := descURL[:strings.LastIndex(descURL, "/")] + "/ctl/IPConn"
	call := func(host, action string, args ...string) (map[string]string, int) {
		t.Helper()
		return soapCall(t, g.l, host, ctl, svcIP2, action, args...)
	}
	eventually(t, "UPnP up", func() error {
		if _, code := call(lab.LAN1, "GetExternalIPAddress"); code != 0 {
			return fmt.Errorf("error %d", code)
		}
		return nil
	})
	start := time.Now()
	for p := first; p < first+n; p++ {
		ps := strconv.Itoa(p)
		if _, code := call(lab.LAN1, "AddPortMapping", "NewRemoteHost", "", "NewExternalPort", ps, "NewProtocol", "TCP", "NewInternalPort", ps,
			"NewInternalClient", lan1.String(), "NewEnabled", "1", "NewPortMappingDescription", "range", "NewLeaseDuration", "3600"); code != 0 {
			t.Fatalf("AddPortMapping %d: error %d", p, code)
		}
	}
	t.Logf("%d mappings added in %v", n, time.Since(start))

	list := func(host string, lo, hi, count int) (portMappingList, int) {
		t.Helper()
		out, code := call(host, "GetListOfPortMappings", "NewStartPort", strconv.Itoa(lo), "NewEndPort", strconv.Itoa(hi),
			"NewProtocol", "TCP", "NewManage", "0", "NewNumberOfPorts", strconv.Itoa(count))
		var l portMappingList
		if code == 0 {
			if err := xml.Unmarshal([]byte(out["NewPortListing"]), &l); err != nil {
				t.Fatalf("NewPortListing: %v\n%.500s", err, out["NewPortListing"])
			}
		}
		return l, code
	}
	tests := []struct {
		name                       string
		lo, hi, count              int
		wantN, wantFirst, wantLast int
	}{
		{"all", 1, 65535, 0, n, first, first + n - 1},
		{"NumberOfPorts 1000", 1, 65535, 1000, 1000, first, first + 999},
		{"NumberOfPorts 1", first + 5, 65535, 1, 1, first + 5, first + 5},
		{"a range of 300", first + 100, first + 399, 0, 300, first + 100, first + 399},
		{"past 128 entries", first + 1000, first + 1199, 150, 150, first + 1000, first + 1149},
	}
	for _, tt := range tests {
		l, code := list(lab.LAN1, tt.lo, tt.hi, tt.count)
		if code != 0 || len(l.Entries) != tt.wantN || l.Entries[0].ExternalPort != tt.wantFirst || l.Entries[len(l.Entries)-1].ExternalPort != tt.wantLast {
			got := []int{}
			if len(l.Entries) > 0 {
				got = []int{l.Entries[0].ExternalPort, l.Entries[len(l.Entries)-1].ExternalPort}
			}
			t.Errorf("%s: error %d, %d entries %v; want %d, %d..%d", tt.name, code, len(l.Entries), got, tt.wantN, tt.wantFirst, tt.wantLast)
		}
	}
	if l, _ := list(lab.LAN1, first, first, 0); len(l.Entries) == 1 {
		e := l.Entries[0]
		if e.Protocol != "TCP" || e.InternalClient != lan1.String() || e.InternalPort != first {
			t.Errorf("entry: %+v", e)
		}
	}

	// Secure mode: lan2 sees none of them and deletes none.
	if _, code := list(lab.LAN2, 1, 65535, 0); code != 730 {
		t.Errorf("lan2 lists lan1's mappings: error %d, want 730", code)
	}
	if _, code := call(lab.LAN2, "DeletePortMappingRange", "NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "TCP", "NewManage", "1"); code != 730 {
		t.Errorf("lan2 deletes lan1's mappings: error %d, want 730", code)
	}

	if _, code := call(lab.LAN1, "DeletePortMappingRange", "NewStartPort", strconv.Itoa(first), "NewEndPort", strconv.Itoa(first+1499), "NewProtocol", "TCP", "NewManage", "0"); code != 0 {
		t.Fatalf("DeletePortMappingRange of 1500: error %d", code)
	}
	if l, code := list(lab.LAN1, 1, 65535, 0); code != 0 || len(l.Entries) != 500 || l.Entries[0].ExternalPort != first+1500 {
		t.Fatalf("after deleting 1500: error %d, %d entries", code, len(l.Entries))
	}
	if _, code := call(lab.LAN1, "DeletePortMappingRange", "NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "TCP", "NewManage", "0"); code != 0 {
		t.Fatalf("DeletePortMappingRange of the rest: error %d", code)
	}
	if _, code := list(lab.LAN1, 1, 65535, 0); code != 730 {
		t.Fatalf("after deleting all: error %d, want 730", code)
	}
	var ms []nat44.Mapping
	if err := g.api().Do("GET", "/api/v1/mappings", nil, &ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Owner == nat44.OwnerUPnP {
			t.Fatalf("a UPnP mapping is left: %+v", m)
		}
	}
}

// event is one NOTIFY a subscriber got.
type event struct {
	sid, seq string
	props    map[string]string
}

// eventListener is a subscriber's HTTP server in host, on addr.
func eventListener(t *testing.T, l *lab.Lab, host, addr string) <-chan event {
	t.Helper()
	var ln net.Listener
	if err := l.Do(host, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	ch := make(chan event, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		props, err := gena.ParsePropertySet(b)
		if r.Method != "NOTIFY" || err != nil {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		e := event{sid: r.Header.Get("SID"), seq: r.Header.Get("SEQ"), props: map[string]string{}}
		for _, p := range props {
			e.props[p.Name] = p.Value
		}
		select {
		case ch <- e:
		default:
		}
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ch
}

// waitNotify waits for an event whose property name has value want.
func waitNotify(t *testing.T, ch <-chan event, name, want string) event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.props[name] == want {
				return e
			}
		case <-deadline:
			t.Fatalf("no event with %s = %q", name, want)
		}
	}
}

// TestUPnPEvents: a subscriber in lan1 gets the initial event, one when
// a mapping is added and one when the WAN address changes; a CALLBACK
// to another host is refused (CallStranger).
func TestUPnPEvents(t *testing.T) {
	testenv.Root(t)
	g := startGateway(t, "")
	events := eventListener(t, g.l, lab.LAN1, hostPort(lan1, 7600))
	base := descURL[:strings.LastIndex(descURL, "/")]
	subscribe := func(callback string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("SUBSCRIBE", base+"/evt/IPConn", nil)
		req.Header.Set("CALLBACK", "<"+callback+">")
		req.Header.Set("NT", "upnp:event")
		req.Header.Set("TIMEOUT", "Second-300")
		var resp *http.Response
		eventually(t, "SUBSCRIBE", func() (err error) {
			resp, err = nsClient(g.l, lab.LAN1).Do(req)
			return err
		})
		resp.Body.Close()
		return resp
	}
	resp := subscribe("http://" + hostPort(lan1, 7600) + "/evt")
	sid := resp.Header.Get("SID")
	if resp.StatusCode != 200 || !strings.HasPrefix(sid, "uuid:") {
		t.Fatalf("SUBSCRIBE: %d %v", resp.StatusCode, resp.Header)
	}
	e := waitNotify(t, events, "ExternalIPAddress", wanAddr.String())
	if e.sid != sid || e.seq != "0" || e.props["PortMappingNumberOfEntries"] != "0" || e.props["ConnectionStatus"] != "Connected" {
		t.Fatalf("initial event: %+v", e)
	}

	ctl := base + "/ctl/IPConn"
	if _, code := soapCall(t, g.l, lab.LAN1, ctl, svcIP2, "AddPortMapping", "NewRemoteHost", "", "NewExternalPort", "7700", "NewProtocol", "TCP", "NewInternalPort", "7700",
		"NewInternalClient", lan1.String(), "NewEnabled", "1", "NewPortMappingDescription", "gena", "NewLeaseDuration", "3600"); code != 0 {
		t.Fatalf("AddPortMapping: error %d", code)
	}
	if e := waitNotify(t, events, "PortMappingNumberOfEntries", "1"); e.seq == "0" {
		t.Errorf("event after a mapping: SEQ %s", e.seq)
	}

	newAddr := netip.MustParseAddr("203.0.113.3")
	g.mustRun(lab.Gateway, "ip", "addr", "del", lab.WANAddr.String(), "dev", lab.GatewayWAN)
	g.mustRun(lab.Gateway, "ip", "addr", "add", newAddr.String()+"/24", "dev", lab.GatewayWAN)
	g.mustRun(lab.Gateway, "ip", "route", "replace", "default", "via", lab.ISPWANAddr.Addr().String())
	waitNotify(t, events, "ExternalIPAddress", newAddr.String())

	// CallStranger: events only to the subscriber itself.
	if resp := subscribe("http://" + hostPort(lan2, 7600) + "/evt"); resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("SUBSCRIBE with lan2's CALLBACK from lan1: %d, want 412", resp.StatusCode)
	}

	req, _ := http.NewRequest("UNSUBSCRIBE", base+"/evt/IPConn", nil)
	req.Header.Set("SID", sid)
	if resp, err := nsClient(g.l, lab.LAN1).Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("UNSUBSCRIBE: %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestUPnPByebye: on SIGTERM the daemon says ssdp:byebye on the LAN over
// IPv4 and IPv6 (ff02::c and ff05::c).
func TestUPnPByebye(t *testing.T) {
	testenv.Root(t)
	g := startGateway(t, "")
	type sock struct {
		group string
		c     *net.UDPConn
	}
	var socks []sock
	for _, grp := range []string{"239.255.255.250", "ff02::c", "ff05::c"} {
		var c *net.UDPConn
		err := g.l.Do(lab.LAN1, func() error {
			ifi, err := net.InterfaceByName(lab.HostIf)
			if err != nil {
				return err
			}
			network := "udp4"
			if strings.Contains(grp, ":") {
				network = "udp6"
			}
			c, err = net.ListenMulticastUDP(network, ifi, &net.UDPAddr{IP: net.ParseIP(grp), Port: 1900})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		socks = append(socks, sock{grp, c})
	}
	eventually(t, "UPnP up", func() error {
		_, err := msearch6(g.l, lab.LAN1, "upnp:rootdevice")
		return err
	})
	g.signal(syscall.SIGTERM)
	for _, s := range socks {
		s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 2048)
		for {
			n, _, err := s.c.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("no ssdp:byebye on %s: %v", s.group, err)
			}
			if m := string(buf[:n]); strings.HasPrefix(m, "NOTIFY") && strings.Contains(m, "NTS: ssdp:byebye") && strings.Contains(m, "NT: upnp:rootdevice") {
				break
			}
		}
	}
}
