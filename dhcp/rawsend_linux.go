package dhcp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// linkSender sends a reply to a client that has no address yet: unicast to
// yiaddr at the client's hardware address (RFC 2131 4.1), written as a
// whole IPv4/UDP packet on a packet socket. Unlike dnsmasq, which adds a
// neighbour entry per client and fills the table under load, it leaves the
// kernel's neighbour table alone.
type linkSender struct {
	fd      int
	ifindex int
	src     netip.Addr
}

func newLinkSender(iface *net.Interface, src netip.Addr) (*linkSender, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0) // send only
	if err != nil {
		return nil, fmt.Errorf("dhcp: packet socket: %w", err)
	}
	return &linkSender{fd: fd, ifindex: iface.Index, src: src}, nil
}

func (l *linkSender) send(payload []byte, dst netip.Addr, hw net.HardwareAddr) error {
	if len(hw) != 6 {
		return fmt.Errorf("dhcp: hardware address %v is not Ethernet", hw)
	}
	pkt := appendIPv4UDP(nil, l.src, dst, serverPort, clientPort, payload)
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: l.ifindex, Halen: 6}
	copy(to.Addr[:], hw)
	if err := unix.Sendto(l.fd, pkt, 0, to); err != nil {
		return fmt.Errorf("dhcp: send to %v at %v: %w", dst, hw, err)
	}
	return nil
}

func (l *linkSender) close() { unix.Close(l.fd) }

// appendIPv4UDP builds an IPv4 header (no options, DF clear, TTL 64) and
// a UDP header with its checksum around payload.
func appendIPv4UDP(dst []byte, src, to netip.Addr, sport, dport uint16, payload []byte) []byte {
	total := 20 + 8 + len(payload)
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	s, d := src.As4(), to.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))

	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	// Pseudo-header sum, then header and payload.
	var pseudo uint32
	pseudo += uint32(binary.BigEndian.Uint16(s[0:])) + uint32(binary.BigEndian.Uint16(s[2:]))
	pseudo += uint32(binary.BigEndian.Uint16(d[0:])) + uint32(binary.BigEndian.Uint16(d[2:]))
	pseudo += unix.IPPROTO_UDP + uint32(8+len(payload))
	sum := checksum(append(udp, payload...), pseudo)
	if sum == 0 {
		sum = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:], sum)

	dst = append(dst, ip...)
	dst = append(dst, udp...)
	return append(dst, payload...)
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
