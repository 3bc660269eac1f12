package teredo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"

	"gateway/internal/clock"
	"gateway/sixto4/teredo/wire"
)

// datapath moves packets between a TUN device and the UDP socket through
// the peers state machine: what the client and the relay share.
type datapath struct {
	name string // the TUN device's, for errors
	dev  tun.Device
	conn *net.UDPConn
	clk  clock.Clock
	// hand takes what the peers pass to the qualifier (the server's
	// RAs); nil where there is no qualifier (the relay).
	hand func(from netip.AddrPort, pkt []byte)

	mu    sync.Mutex // guards peers, and what its owner says
	peers *peers

	inPackets, inBytes, outPackets, outBytes, bubbles atomic.Uint64
	drops                                             [numReasons]atomic.Uint64
}

// closeIO closes the socket and the device; closing them again is no
// error.
func (d *datapath) closeIO() error {
	var errs []error
	if d.conn != nil {
		if err := d.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if d.dev != nil {
		if err := d.dev.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *datapath) drop(r Reason, n int) { d.drops[r].Add(uint64(n)) }

// dropCounts are the drops by reason name, the reasons never seen left out.
func (d *datapath) dropCounts() map[string]uint64 {
	m := map[string]uint64{}
	for r := Reason(1); r < numReasons; r++ {
		if n := d.drops[r].Load(); n > 0 {
			m[r.String()] = n
		}
	}
	return m
}

// tick resends due bubbles and gives up on silent peers.
func (d *datapath) tick() {
	d.mu.Lock()
	dropped, out := d.peers.tick(d.clk.Now(), nil)
	d.mu.Unlock()
	d.drop(PeerUnreachable, dropped)
	d.send(out)
}

// send sends bubbles and flushed queues (and writes the inbound ones).
func (d *datapath) send(out []datagram) {
	for _, g := range out {
		if !g.To.IsValid() {
			d.toTun(g.Payload)
			continue
		}
		if _, err := d.conn.WriteToUDPAddrPort(g.Payload, g.To); err != nil {
			d.drop(SendFailed, 1)
			continue
		}
		if validIPv6(g.Payload) && g.Payload[6] == wire.ProtoNone && len(g.Payload) == 40 {
			d.bubbles.Add(1)
		} else {
			d.outPackets.Add(1)
			d.outBytes.Add(uint64(len(g.Payload)))
		}
	}
}

// toTun writes a packet that waited for its relay (after tunOffset
// bytes of headroom) to the TUN device.
func (d *datapath) toTun(b []byte) {
	if _, err := d.dev.Write([][]byte{b}, tunOffset); err != nil {
		d.drop(TunWriteFailed, 1)
		return
	}
	d.inPackets.Add(1)
	d.inBytes.Add(uint64(len(b) - tunOffset))
}

// tunToNet reads IPv6 packets from the TUN device, a batch per read, and
// sends them to their peers.
func (d *datapath) tunToNet() error {
	n := d.dev.BatchSize()
	bufs := make([][]byte, n)
	for i := range bufs {
		size := tunOffset + MTU + 256
		if i == 0 {
			size = tunOffset + 65536
		}
		bufs[i] = make([]byte, size)
	}
	sizes := make([]int, n)
	out := make([]datagram, 0, 8)
	errRun := 0
	for {
		got, err := d.dev.Read(bufs, sizes, tunOffset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errRun >= 100 {
				return fmt.Errorf("teredo: read %s: %w", d.name, err)
			}
			if !errors.Is(err, tun.ErrTooManySegments) {
				errRun++
			}
			d.drop(Malformed, 1)
			continue
		}
		errRun = 0
		for i := range got {
			pkt := bufs[i][tunOffset : tunOffset+sizes[i]]
			d.mu.Lock()
			to, r, o := d.peers.outbound(d.clk.Now(), pkt, out[:0])
			d.mu.Unlock()
			out = o
			d.send(out)
			if r != 0 {
				d.drop(r, 1)
				continue
			}
			if !to.IsValid() {
				continue // queued
			}
			if _, err := d.conn.WriteToUDPAddrPort(pkt, to); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return fmt.Errorf("teredo: send: %w", err)
				}
				d.drop(SendFailed, 1)
				continue
			}
			d.outPackets.Add(1)
			d.outBytes.Add(uint64(len(pkt)))
		}
	}
}

// netToTun reads Teredo packets from the UDP socket, checks them and
// writes the IPv6 packets they carry to the TUN device.
func (d *datapath) netToTun() error {
	buf := make([]byte, tunOffset+65536)
	bufs := [][]byte{nil}
	out := make([]datagram, 0, 8)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf[tunOffset:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("teredo: receive: %w", err)
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		pkt := buf[tunOffset : tunOffset+n]
		d.mu.Lock()
		off, v, r, o := d.peers.inbound(d.clk.Now(), from, pkt, out[:0])
		d.mu.Unlock()
		out = o
		d.send(out)
		switch v {
		case drop:
			d.drop(r, 1)
		case toQualifier:
			if d.hand != nil {
				d.hand(from, pkt)
			}
		case deliver:
			ip := pkt[off:]
			ip = ip[:40+int(binary.BigEndian.Uint16(ip[4:6]))] // trailers off
			// Headroom for the virtio header before the packet: move
			// it back over what the Teredo headers took.
			bufs[0] = buf[off : off+tunOffset+len(ip)]
			if _, err := d.dev.Write(bufs, tunOffset); err != nil {
				if errors.Is(err, os.ErrClosed) {
					return fmt.Errorf("teredo: write %s: %w", d.name, err)
				}
				d.drop(TunWriteFailed, 1)
				continue
			}
			d.inPackets.Add(1)
			d.inBytes.Add(uint64(len(ip)))
		}
	}
}
