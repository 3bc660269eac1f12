package pd_test

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gateway/gateway/lab"
)

// sniffer records the DHCPv6 payloads (UDP to port 546 or 547) seen on
// the gateway's WAN, in both directions, from a packet socket opened in
// the gateway's namespace.
type sniffer struct {
	fd   int
	done chan struct{}
	mu   sync.Mutex
	msgs [][]byte
	stop sync.Once
}

func sniffWAN(t *testing.T, l *lab.Lab) *sniffer {
	t.Helper()
	s := &sniffer{fd: -1, done: make(chan struct{})}
	// ETH_P_ALL: only such a tap sees what the host sends, too.
	proto := int(htons(unix.ETH_P_ALL))
	err := l.Do(lab.Gateway, func() error {
		ifi, err := net.InterfaceByName(lab.GatewayWAN)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		s.fd = fd
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
		t.Fatalf("sniffer on %s: %v", lab.GatewayWAN, err)
	}
	quit := make(chan struct{})
	go s.run(quit)
	t.Cleanup(func() { s.close(quit) })
	return s
}

func (s *sniffer) run(quit <-chan struct{}) {
	defer close(s.done)
	buf := make([]byte, 2048)
	for {
		select {
		case <-quit:
			return
		default:
		}
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			continue // the receive timeout: look at quit again
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Protocol != htons(unix.ETH_P_IPV6) {
			continue
		}
		// IPv6 header (40 octets, next header UDP: no extension header
		// from dhcpd or from us), then UDP.
		p := buf[:n]
		if len(p) < 48 || p[6] != unix.IPPROTO_UDP {
			continue
		}
		udp := p[40:]
		if dst := binary.BigEndian.Uint16(udp[2:]); dst != 546 && dst != 547 {
			continue
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, append([]byte(nil), udp[8:]...))
		s.mu.Unlock()
	}
}

func (s *sniffer) close(quit chan struct{}) {
	s.stop.Do(func() {
		close(quit)
		<-s.done
		unix.Close(s.fd)
	})
}

// messages returns the payloads seen so far.
func (s *sniffer) messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.msgs...)
}

// htons turns v into network byte order, as the socket calls want it.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}
