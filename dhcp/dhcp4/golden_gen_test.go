package dhcp4

// Generates testdata/golden/*.bin with github.com/insomniacslk/dhcp's
// dhcpv4 (an independent implementation), so that our codec is checked
// against it. Run: go test ./dhcp/dhcp4 -run TestGenGolden -gen. The
// values the files must parse into are in dhcp4_test.go (golden).

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var gen = flag.Bool("gen", false, "write testdata/golden with insomniacslk/dhcp")

func TestGenGolden(t *testing.T) {
	if !*gen {
		t.Skip("-gen not set")
	}
	chaddr := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}
	xid := dhcpv4.TransactionID{0xa1, 0xb2, 0xc3, 0xd4}
	ip := net.ParseIP
	long := make([]byte, 300)
	for i := range long {
		long[i] = byte(i)
	}
	msg := func(op dhcpv4.OpcodeType, opts dhcpv4.Options, mods ...func(*dhcpv4.DHCPv4)) *dhcpv4.DHCPv4 {
		m := &dhcpv4.DHCPv4{OpCode: op, HWType: iana.HWTypeEthernet, TransactionID: xid, ClientHWAddr: chaddr,
			ClientIPAddr: net.IPv4zero, YourIPAddr: net.IPv4zero, ServerIPAddr: net.IPv4zero, GatewayIPAddr: net.IPv4zero, Options: opts}
		for _, f := range mods {
			f(m)
		}
		return m
	}
	req, rep := dhcpv4.OpcodeBootRequest, dhcpv4.OpcodeBootReply
	msgs := map[string]*dhcpv4.DHCPv4{
		// What dhclient sends first: broadcast flag, a request list, its
		// host name, a client identifier and a maximum size.
		"discover": msg(req, dhcpv4.Options{
			53: {1}, 12: []byte("laptop"), 55: {1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42},
			57: {0x05, 0xdc}, 60: []byte("MSFT 5.0"), 61: {1, 2, 0, 0, 0, 0, 0x42},
		}, func(m *dhcpv4.DHCPv4) { m.Flags = 0x8000; m.NumSeconds = 3 }),
		"request-selecting": msg(req, dhcpv4.Options{53: {3}, 50: {192, 168, 1, 50}, 54: {192, 168, 1, 1}, 55: {1, 3, 6}}),
		"request-renewing": msg(req, dhcpv4.Options{53: {3}, 51: {0, 0, 0x0e, 0x10}},
			func(m *dhcpv4.DHCPv4) { m.ClientIPAddr = ip("192.168.1.50") }),
		"release": msg(req, dhcpv4.Options{53: {7}, 54: {192, 168, 1, 1}},
			func(m *dhcpv4.DHCPv4) { m.ClientIPAddr = ip("192.168.1.50") }),
		// Relayed, with option 82 (which goes last).
		"discover-relayed": msg(req, dhcpv4.Options{53: {1}, 82: {1, 4, 'p', 'o', 'r', 't'}, 81: {0x05, 0, 0, 5, 'p', 'h', 'o', 'n', 'e', 0}},
			func(m *dhcpv4.DHCPv4) { m.HopCount = 1; m.GatewayIPAddr = ip("192.168.1.3") }),
		// What our server offers: every option it writes.
		"offer": msg(rep, dhcpv4.Options{
			53: {2}, 54: {192, 168, 1, 1}, 51: {0, 0, 0xa8, 0xc0}, 58: {0, 0, 0x54, 0x60}, 59: {0, 0, 0x93, 0xa8},
			1: {255, 255, 255, 0}, 3: {192, 168, 1, 1}, 6: {192, 168, 1, 1, 198, 51, 100, 53}, 15: []byte("lan"),
			28: {192, 168, 1, 255}, 26: {0x05, 0xdc}, 12: []byte("printer"),
			121: {16, 10, 8, 192, 168, 1, 254, 0, 192, 168, 1, 1, 24, 203, 0, 113, 0, 0, 0, 0},
		}, func(m *dhcpv4.DHCPv4) { m.YourIPAddr = ip("192.168.1.50") }),
		// An option of 300 octets: two instances on the wire (RFC 3396).
		"ack-long": msg(rep, dhcpv4.Options{53: {5}, 54: {192, 168, 1, 1}, 51: {0xff, 0xff, 0xff, 0xff}, 224: long, 250: {}},
			func(m *dhcpv4.DHCPv4) {
				m.YourIPAddr, m.ClientIPAddr = ip("192.168.1.50"), ip("192.168.1.50")
			}),
		"nak": msg(rep, dhcpv4.Options{53: {6}, 54: {192, 168, 1, 1}, 56: []byte("requested address was not offered")},
			func(m *dhcpv4.DHCPv4) { m.Flags = 0x8000 }),
		// sname and file as strings (a PXE offer).
		"offer-boot": msg(rep, dhcpv4.Options{53: {2}, 54: {192, 168, 1, 1}, 51: {0, 0, 0x0e, 0x10}},
			func(m *dhcpv4.DHCPv4) {
				m.YourIPAddr, m.ServerIPAddr = ip("192.168.1.50"), ip("192.168.1.1")
				m.ServerHostName, m.BootFileName = "boot.lan", "pxelinux.0"
			}),
	}
	dir := "testdata/golden"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, m := range msgs {
		if err := os.WriteFile(filepath.Join(dir, name+".bin"), m.ToBytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
