package dhcp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"gateway/internal/clock"
)

// arpProber checks that addresses are unused before they are offered, with
// ARP probes (RFC 5227 2.1.1: sender address 0.0.0.0, so that no host
// learns a binding from it). Any number of probes are in flight at once
// on one packet socket, so a probe delays only its own client: dnsmasq's
// ping check serialises new clients at ~3 s each.
type arpProber struct {
	fd      int      // for sends
	file    *os.File // the same socket in the netpoller, for reads that Close interrupts
	ifindex int
	mac     net.HardwareAddr
	timeout time.Duration
	clock   clock.Clock

	mu      sync.Mutex // guards waiting
	waiting map[netip.Addr]*probe
}

type probe struct {
	done  func(inUse bool)
	timer *time.Timer
}

func newARPProber(iface *net.Interface, timeout time.Duration, clk clock.Clock) (*arpProber, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return nil, fmt.Errorf("dhcp: arp socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: iface.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("dhcp: arp bind %s: %w", iface.Name, err)
	}
	// A blocking recvfrom is not woken by close(2); through the netpoller,
	// closing the file ends the read.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("dhcp: arp socket: %w", err)
	}
	return &arpProber{fd: fd, file: os.NewFile(uintptr(fd), "arp"), ifindex: iface.Index, mac: iface.HardwareAddr, timeout: timeout, clock: clk, waiting: make(map[netip.Addr]*probe)}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Probe asks whether addr answers ARP; done is called once, from another
// goroutine, with the verdict (after the timeout when nobody answered).
// A second probe of an address already being probed shares the first.
func (p *arpProber) Probe(addr netip.Addr, done func(inUse bool)) {
	p.mu.Lock()
	if w, ok := p.waiting[addr]; ok {
		prev := w.done
		w.done = func(inUse bool) { prev(inUse); done(inUse) }
		p.mu.Unlock()
		return
	}
	w := &probe{done: done}
	p.waiting[addr] = w
	w.timer = p.clock.AfterFunc(p.timeout, func() { p.finish(addr, false) })
	p.mu.Unlock()
	// Two probes, the second halfway, ride out one lost frame.
	p.send(addr)
	p.clock.AfterFunc(p.timeout/2, func() {
		p.mu.Lock()
		_, still := p.waiting[addr]
		p.mu.Unlock()
		if still {
			p.send(addr)
		}
	})
}

func (p *arpProber) finish(addr netip.Addr, inUse bool) {
	p.mu.Lock()
	w, ok := p.waiting[addr]
	if ok {
		delete(p.waiting, addr)
		w.timer.Stop()
	}
	p.mu.Unlock()
	if ok {
		w.done(inUse)
	}
}

// send writes an ARP probe for addr: who-has addr, tell 0.0.0.0.
func (p *arpProber) send(addr netip.Addr) {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1) // request
	copy(b[8:14], p.mac)
	// sender IP 0.0.0.0 (b[14:18]), target MAC zero (b[18:24])
	a := addr.As4()
	copy(b[24:28], a[:])
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: p.ifindex, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	unix.Sendto(p.fd, b, 0, to) // a lost probe only means a less careful check
}

// run reads ARP until ctx is done: a reply from the probed address, or a
// probe or announcement of it by another host (RFC 5227 2.1.1), means it
// is in use.
func (p *arpProber) run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { p.file.Close() })
	defer stop()
	rc, err := p.file.SyscallConn()
	if err != nil {
		return fmt.Errorf("dhcp: arp socket: %w", err)
	}
	buf := make([]byte, 1500)
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("dhcp: arp read: %w", err)
		}
		if addr, ok := arpClaims(buf[:n], p.mac); ok {
			p.finish(addr, true)
		}
	}
}

// arpClaims returns the IPv4 address an ARP packet shows to be in use by
// another host: the sender address of a reply or announcement, or the
// target of another host's probe.
func arpClaims(b []byte, ours net.HardwareAddr) (netip.Addr, bool) {
	if len(b) < 28 || binary.BigEndian.Uint16(b[0:]) != 1 || binary.BigEndian.Uint16(b[2:]) != 0x0800 || b[4] != 6 || b[5] != 4 {
		return netip.Addr{}, false
	}
	if net.HardwareAddr(b[8:14]).String() == ours.String() {
		return netip.Addr{}, false // our own probe, looped back
	}
	sender := netip.AddrFrom4([4]byte(b[14:18]))
	if !sender.IsUnspecified() {
		return sender, true
	}
	return netip.AddrFrom4([4]byte(b[24:28])), true // another host probing it
}

// close ends any probes still waiting, as unanswered.
func (p *arpProber) close() {
	p.mu.Lock()
	ws := p.waiting
	p.waiting = make(map[netip.Addr]*probe)
	p.mu.Unlock()
	for _, w := range ws {
		w.timer.Stop()
	}
}
