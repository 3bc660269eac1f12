package teredo

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP GSO bounds: the kernel takes at most 64 segments per send (older
// kernels' UDP_MAX_SEGMENTS) and one UDP payload of under 64 KiB.
const (
	gsoMaxSegs  = 64
	gsoMaxBytes = 65507 - 8 // the largest UDP payload over IPv4, less slack
)

// mmsgConn is batchConn over recvmmsg and sendmmsg on an IPv4 UDP
// socket, with every header, address and control buffer allocated once
// for batches of up to n: nothing is allocated per datagram. One
// goroutine reads and another writes, each with its own mmsgConn.
type mmsgConn struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	ctrl  []byte // a UDP_SEGMENT control message per header
	ends  []int  // per header: the end of its messages in the batch
	gso   bool   // UDP GSO is on until the kernel refuses it

	// What the syscall closures take and give.
	off    int // the first header of the call
	vlen   int
	n      int
	errno  syscall.Errno
	readFn func(fd uintptr) bool
	sendFn func(fd uintptr) bool
}

var ctrlSpace = unix.CmsgSpace(2)

// newBatchConn returns c's batch I/O for batches of up to n datagrams:
// recvmmsg and sendmmsg (with UDP GSO) for an IPv4 socket, a datagram
// per call otherwise.
func newBatchConn(c *net.UDPConn, n int) batchConn {
	rc, err := c.SyscallConn()
	if err != nil {
		return singleConn{c}
	}
	domain, gso := 0, false
	rc.Control(func(fd uintptr) {
		domain, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		// Kernels before 4.18 (and qemu-user) do not know UDP_SEGMENT.
		_, err := unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
		gso = err == nil
	})
	if domain != unix.AF_INET {
		return singleConn{c}
	}
	m := &mmsgConn{
		rc:    rc,
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n),
		ctrl:  make([]byte, n*ctrlSpace),
		ends:  make([]int, n),
		gso:   gso,
	}
	m.readFn = func(fd uintptr) bool { return m.call(fd, unix.SYS_RECVMMSG) }
	m.sendFn = func(fd uintptr) bool { return m.call(fd, unix.SYS_SENDMMSG) }
	return m
}

// call runs recvmmsg or sendmmsg on vlen headers from off; false asks
// the poller to wait for the socket.
func (m *mmsgConn) call(fd uintptr, trap uintptr) bool {
	r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&m.hdrs[m.off])), uintptr(m.vlen), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	m.n, m.errno = int(r), e
	return true
}

func (m *mmsgConn) readBatch(ms []udpMsg) (int, error) {
	m.off, m.vlen = 0, min(len(ms), len(m.hdrs))
	for i := range m.vlen {
		h := &m.hdrs[i]
		m.iovs[i].Base = &ms[i].Buf[0]
		m.iovs[i].SetLen(len(ms[i].Buf))
		h.Hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&m.names[i])), Namelen: unix.SizeofSockaddrInet4, Iov: &m.iovs[i]}
		h.Hdr.SetIovlen(1)
		h.Len = 0
	}
	if err := m.rc.Read(m.readFn); err != nil {
		return 0, err
	}
	if m.errno != 0 {
		return 0, m.errno
	}
	for i := range m.n {
		h := &m.hdrs[i]
		ms[i].N = int(h.Len)
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			ms[i].N = -1
		}
		sa := &m.names[i]
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		ms[i].Addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return m.n, nil
}

func (m *mmsgConn) writeBatch(ms []udpMsg) (failed int, err error) {
	if len(ms) > len(m.iovs) {
		f, err := m.writeBatch(ms[:len(m.iovs)])
		if err != nil {
			return f, err
		}
		g, err := m.writeBatch(ms[len(m.iovs):])
		return f + g, err
	}
	i := 0
	for i < len(ms) {
		// Headers for what is left: a run of same-size datagrams to one
		// peer in one header (GSO), else one each.
		g := 0
		for j := i; j < len(ms); g++ {
			k := 1
			if m.gso {
				k = gsoRun(ms[j:], gsoMaxSegs, gsoMaxBytes)
			}
			m.header(g, ms[j:j+k], j)
			j += k
			m.ends[g] = j
		}
		sent := 0
		for sent < g {
			m.vlen = g - sent
			// The kernel walks from the header we point it at.
			first := i
			if sent > 0 {
				first = m.ends[sent-1]
			}
			m.off = sent
			if err := m.rc.Write(m.sendFn); err != nil {
				return failed, err
			}
			if m.errno == 0 {
				sent += m.n
				continue
			}
			segs := m.ends[sent] - first
			if segs > 1 && (m.errno == unix.EIO || m.errno == unix.EINVAL) {
				// GSO refused (EIO: no checksum offload on the way out;
				// EINVAL: a segment size or count the kernel does not
				// take): from here on a datagram per header.
				m.gso = false
				i = first
				break
			}
			// Refused for its destination (unreachable, filtered): the
			// whole run, and on with the rest.
			failed += segs
			sent++
		}
		if sent == g {
			i = len(ms)
		}
	}
	return failed, nil
}

// header points header g at the datagrams ms (one destination), cut by
// the kernel at the first one's size when there are several; iov is the
// index of ms[0] in the batch.
func (m *mmsgConn) header(g int, ms []udpMsg, iov int) {
	for k := range ms {
		m.iovs[iov+k].Base = unsafe.SliceData(ms[k].Buf)
		m.iovs[iov+k].SetLen(len(ms[k].Buf))
	}
	sa := &m.names[g]
	sa.Family = unix.AF_INET
	sa.Addr = ms[0].Addr.Addr().As4()
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(ms[0].Addr.Port()>>8), byte(ms[0].Addr.Port())
	h := &m.hdrs[g]
	h.Hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(sa)), Namelen: unix.SizeofSockaddrInet4, Iov: &m.iovs[iov]}
	h.Hdr.SetIovlen(len(ms))
	h.Len = 0
	if len(ms) > 1 {
		c := m.ctrl[g*ctrlSpace : (g+1)*ctrlSpace]
		cm := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		cm.Level, cm.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		cm.SetLen(unix.CmsgLen(2))
		*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(len(ms[0].Buf))
		h.Hdr.Control = &c[0]
		h.Hdr.SetControllen(ctrlSpace)
	}
}

// setRcvBuf sets c's receive buffer size, beyond net.core.rmem_max where
// we may (CAP_NET_ADMIN: a router's default maximum is often as small as
// the default size), else up to it.
func setRcvBuf(c *net.UDPConn, n int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
}
