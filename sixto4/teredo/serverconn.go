package teredo

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// serverConn is the tunnel's UDP socket as the Qualifier sees it while
// the read loop owns the socket: writes go to the socket, reads come
// from what the read loop hands over (packets from the server that are
// not for the TUN device: RAs).
type serverConn struct {
	conn *net.UDPConn
	in   chan serverPacket

	mu       sync.Mutex // guards deadline, changed
	deadline time.Time
	changed  chan struct{} // closed when deadline changes
}

type serverPacket struct {
	from netip.AddrPort
	b    []byte
}

func newServerConn(conn *net.UDPConn) *serverConn {
	return &serverConn{conn: conn, in: make(chan serverPacket, 16), changed: make(chan struct{})}
}

// hand gives the qualifier a copy of b; dropped if it is not reading.
func (s *serverConn) hand(from netip.AddrPort, b []byte) {
	select {
	case s.in <- serverPacket{from, append([]byte(nil), b...)}:
	default:
	}
}

func (s *serverConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		s.mu.Lock()
		d, changed := s.deadline, s.changed
		s.mu.Unlock()
		var timer *time.Timer
		var timeout <-chan time.Time
		if !d.IsZero() {
			wait := time.Until(d)
			if wait <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		stop := func() {
			if timer != nil {
				timer.Stop()
			}
		}
		select {
		case p := <-s.in:
			stop()
			return copy(b, p.b), net.UDPAddrFromAddrPort(p.from), nil
		case <-timeout:
			return 0, nil, os.ErrDeadlineExceeded
		case <-changed:
			stop()
		}
	}
}

func (s *serverConn) WriteTo(b []byte, addr net.Addr) (int, error) { return s.conn.WriteTo(b, addr) }
func (s *serverConn) Close() error                                 { return nil }
func (s *serverConn) LocalAddr() net.Addr                          { return s.conn.LocalAddr() }
func (s *serverConn) SetDeadline(t time.Time) error                { return s.SetReadDeadline(t) }
func (s *serverConn) SetWriteDeadline(t time.Time) error           { return nil }

func (s *serverConn) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}
