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

// rcvBuf is the socket's receive buffer size. The default
// (rmem_default, 208 KiB on Linux: ~90 datagrams of 1,280 bytes at their
// kernel size) overflows while the loop waits for a CPU, and each
// datagram lost there costs a TCP flow a retransmission and its window:
// in bench/teredo 1 MiB raised TCP from the peer by ~20 % and cut the
// CPU per GB by ~10 % (a larger send buffer did nothing measurable).
const rcvBuf = 1 << 20

// rxBatch is how many datagrams one recvmmsg takes. Each buffer has room
// for 64 KiB: the TUN device's writer coalesces TCP segments into the
// first of a flow (GRO), in place.
const (
	rxBatch = 32
	rxBuf   = tunOffset + 65536
)

// tunToNet reads IPv6 packets from the TUN device, a batch per read (a
// TCP super-packet comes split into its segments), and sends them to
// their peers, a batch per sendmmsg.
func (d *datapath) tunToNet() error {
	n := d.dev.BatchSize()
	bufs := make([][]byte, n)
	for i := range bufs {
		size := tunOffset + MTU + 256
		if i == 0 {
			size = rxBuf // what is not a GSO segment lands here, whatever its size
		}
		bufs[i] = make([]byte, size)
	}
	sizes := make([]int, n)
	bc := newBatchConn(d.conn, n)
	msgs := make([]udpMsg, n)
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
		k, bytes := 0, 0
		var drops [numReasons]int
		out = out[:0]
		d.mu.Lock()
		now := d.clk.Now()
		for i := range got {
			pkt := bufs[i][tunOffset : tunOffset+sizes[i]]
			var to netip.AddrPort
			var r Reason
			to, r, out = d.peers.outbound(now, pkt, out)
			if r != 0 {
				drops[r]++
				continue
			}
			if !to.IsValid() {
				continue // queued
			}
			msgs[k] = udpMsg{Buf: pkt, Addr: to}
			k++
			bytes += len(pkt)
		}
		d.mu.Unlock()
		for r, c := range drops {
			if c > 0 {
				d.drop(Reason(r), c)
			}
		}
		// Bubbles first: they open the way for what follows.
		d.send(out)
		if k == 0 {
			continue
		}
		failed, err := bc.writeBatch(msgs[:k])
		if err != nil {
			return fmt.Errorf("teredo: send: %w", err)
		}
		if failed > 0 {
			d.drop(SendFailed, failed)
		}
		d.outPackets.Add(uint64(k - failed))
		d.outBytes.Add(uint64(bytes)) // refused ones too: close enough for a counter
	}
}

// netToTun reads Teredo packets from the UDP socket, a batch per
// recvmmsg, checks them and writes the IPv6 packets they carry to the
// TUN device in one batch (which coalesces TCP segments: GRO).
func (d *datapath) netToTun() error {
	setRcvBuf(d.conn, rcvBuf)
	bc := newBatchConn(d.conn, rxBatch)
	bufs := make([][]byte, rxBatch)
	msgs := make([]udpMsg, rxBatch)
	for i := range msgs {
		bufs[i] = make([]byte, rxBuf)
		msgs[i].Buf = bufs[i][tunOffset:]
	}
	wr := make([][]byte, 0, rxBatch)
	out := make([]datagram, 0, 8)
	type hand struct {
		from netip.AddrPort
		pkt  []byte
	}
	hands := make([]hand, 0, rxBatch)
	for {
		n, err := bc.readBatch(msgs)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("teredo: receive: %w", err)
			}
			continue
		}
		wr, out, hands = wr[:0], out[:0], hands[:0]
		var drops [numReasons]int
		bytes := 0
		d.mu.Lock()
		now := d.clk.Now()
		for i := range n {
			m := &msgs[i]
			if m.N < 0 {
				drops[Malformed]++
				continue
			}
			from := netip.AddrPortFrom(m.Addr.Addr().Unmap(), m.Addr.Port())
			pkt := bufs[i][tunOffset : tunOffset+m.N]
			var off int
			var v verdict
			var r Reason
			off, v, r, out = d.peers.inbound(now, from, pkt, out)
			switch v {
			case drop:
				drops[r]++
			case toQualifier:
				hands = append(hands, hand{from, pkt})
			case deliver:
				ip := pkt[off:]
				ip = ip[:40+int(binary.BigEndian.Uint16(ip[4:6]))] // trailers off
				// Headroom for the virtio header before the packet: move
				// it back over what the Teredo headers took.
				wr = append(wr, bufs[i][off:off+tunOffset+len(ip)])
				bytes += len(ip)
			}
		}
		d.mu.Unlock()
		for r, c := range drops {
			if c > 0 {
				d.drop(Reason(r), c)
			}
		}
		d.send(out)
		if d.hand != nil {
			for _, h := range hands {
				d.hand(h.from, h.pkt)
			}
		}
		if len(wr) == 0 {
			continue
		}
		if _, err := d.dev.Write(wr, tunOffset); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return fmt.Errorf("teredo: write %s: %w", d.name, err)
			}
			// Some of the batch may have gone: the counters stay
			// approximate rather than walk the errors.
			d.drop(TunWriteFailed, 1)
			continue
		}
		d.inPackets.Add(uint64(len(wr)))
		d.inBytes.Add(uint64(bytes))
	}
}
