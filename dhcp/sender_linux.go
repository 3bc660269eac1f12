package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// rcvBuf is the server socket's receive buffer: about 3,000 requests.
const rcvBuf = 2 << 20

// listenUDP opens the server socket: port 67 on every address, but bound
// to the LAN interface, so that the server never hears nor answers the WAN.
func listenUDP(ifname string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.BindToDevice(int(fd), ifname)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			}
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
			// The default buffer holds ~166 requests: a LAN powering up
			// at once (a few hundred clients) would lose DISCOVERs while
			// the server is not scheduled. FORCE passes rmem_max as root;
			// elsewhere take what rmem_max allows.
			if serr == nil && unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", serverPort))
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen on %s: %w", ifname, err)
	}
	return pc.(*net.UDPConn), nil
}

// sender carries replies to where RFC 2131 4.1 says they go.
type sender struct {
	conn *net.UDPConn
	link *linkSender
}

func (s *sender) send(act Action) error {
	b, err := act.Reply.Append(nil)
	if err != nil {
		return err
	}
	switch act.To.Kind {
	case DestBroadcast:
		_, err := s.conn.WriteToUDPAddrPort(b, netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), clientPort))
		return err
	case DestUnicast:
		_, err := s.conn.WriteToUDPAddrPort(b, netip.AddrPortFrom(act.To.Addr, clientPort))
		return err
	case DestRelay:
		_, err := s.conn.WriteToUDPAddrPort(b, netip.AddrPortFrom(act.To.Addr, serverPort))
		return err
	case DestHardware:
		return s.link.send(b, act.To.Addr, act.To.HW)
	}
	return fmt.Errorf("dhcp: reply with no destination")
}
