package teredo

import (
	"errors"
	"net"
	"net/netip"
)

// udpMsg is one datagram of a batch: for a read, Buf is where it goes
// and N and Addr say what came; for a write, Buf is the payload and
// Addr the destination.
type udpMsg struct {
	Buf  []byte
	N    int
	Addr netip.AddrPort
}

// batchConn is the Teredo UDP socket as the datapath loops use it: a
// batch of datagrams per system call (recvmmsg, sendmmsg on Linux).
type batchConn interface {
	// readBatch fills ms from the front and returns how many it filled;
	// a datagram larger than its Buf has N == -1.
	readBatch(ms []udpMsg) (int, error)
	// writeBatch sends every message, in order, and returns how many
	// the kernel refused; the error is only for a closed socket.
	writeBatch(ms []udpMsg) (failed int, err error)
}

// gsoRun is how many of ms, from the front, can go as one UDP GSO send
// (one payload the kernel cuts into equal segments): same destination,
// every one but the last of the first one's size, the last no larger,
// at most maxSegs of them and maxBytes in all.
func gsoRun(ms []udpMsg, maxSegs, maxBytes int) int {
	if len(ms) == 0 {
		return 0
	}
	size := len(ms[0].Buf)
	total := size
	n := 1
	for n < len(ms) && n < maxSegs {
		m := &ms[n]
		if m.Addr != ms[0].Addr || len(m.Buf) > size || len(m.Buf) == 0 || total+len(m.Buf) > maxBytes {
			break
		}
		total += len(m.Buf)
		n++
		if len(m.Buf) < size {
			break // a short one ends the run
		}
	}
	return n
}

// singleConn is batchConn a datagram per system call: for other
// systems, and sockets that are not IPv4.
type singleConn struct{ c *net.UDPConn }

func (s singleConn) readBatch(ms []udpMsg) (int, error) {
	n, from, err := s.c.ReadFromUDPAddrPort(ms[0].Buf)
	if err != nil {
		return 0, err
	}
	ms[0].N, ms[0].Addr = n, from
	return 1, nil
}

func (s singleConn) writeBatch(ms []udpMsg) (failed int, err error) {
	for i := range ms {
		if _, err := s.c.WriteToUDPAddrPort(ms[i].Buf, ms[i].Addr); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return failed, err
			}
			failed++
		}
	}
	return failed, nil
}
