package sixto4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/tun"
)

const (
	// tunOffset is the headroom before each packet handed to the TUN
	// device: wireguard's tun writes its virtio-net header there.
	tunOffset = 16
	// rxBatch is how many IPv4 packets one recvmmsg takes. Each buffer
	// holds 64 KiB: the TUN writer coalesces TCP segments into it (GRO).
	rxBatch = 64
	rxBuf   = tunOffset + 65536
)

// batchConn is the raw protocol-41 socket: recvmmsg and sendmmsg
// (ipv4.PacketConn on Linux). Messages read carry the IPv4 header.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
	Close() error
}

// routeTable sets the device's address and routes (rtnetlink on Linux).
type routeTable interface {
	addAddress(p netip.Prefix) error
	// route adds or deletes the route to dst from src (src zero: from
	// anywhere) through the device.
	route(add bool, dst, src netip.Prefix) error
	close() error
}

// Tunnel is a 6to4 tunnel: a TUN device and a raw IPv4 socket for
// protocol 41 (RFC 3056, RFC 3964).
//
// Outer packets go without DF. The tunnel MTU is static (1480 by default)
// and RFC 4213 section 3.2.1 says of a static tunnel MTU: "the Don't
// Fragment bit MUST NOT be set in the encapsulating IPv4 header"; an IPv4
// path narrower than 1500 then fragments the outer packet instead of
// black-holing it, as there is no ICMPv4 to IPv6 Packet Too Big
// translation here (RFC 4213's dynamic MTU) to tell the IPv6 sender.
type Tunnel struct {
	cfg    Config
	pol    policy
	prefix netip.Prefix
	addr   netip.Addr // our 2002:WWXX:YYZZ::1
	dev    tun.Device
	conn   batchConn  // raw, protocol 41, bound to Local
	rt     routeTable // opened in the tunnel's network namespace
	log    *slog.Logger
	warn   onceLog
	icmp   *bucket // ICMPv6 errors, RFC 4443 section 2.4 (f)
	debug  *bucket // per-packet debug lines
	count  counters

	mu        sync.Mutex // guards defaultOn, closed
	defaultOn bool
	closed    bool
}

// newTunnel validates cfg and allocates; the caller opens the devices.
func newTunnel(cfg Config) (*Tunnel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	prefix, _ := PrefixOf(cfg.Local)
	addr, _ := RouterAddr(cfg.Local)
	t := &Tunnel{
		cfg: cfg, prefix: prefix, addr: addr, log: cfg.Logger,
		pol:   newPolicy(cfg.Mode, cfg.Local, cfg.Relay, cfg.MTU, cfg.AllowDocumentation),
		icmp:  newBucket(50, 50),
		debug: newBucket(1, 5),
	}
	t.warn.log = cfg.Logger
	if cfg.Mode == Relay {
		t.pol.relay = netip.Addr{}
	}
	return t, nil
}

// newWithDeps is New over the given device, socket and route table
// (fakes in unit tests): it gives the device its address and the route
// for 2002::/16.
func newWithDeps(cfg Config, dev tun.Device, conn batchConn, rt routeTable) (*Tunnel, error) {
	t, err := newTunnel(cfg)
	if err != nil {
		return nil, err
	}
	t.dev, t.conn, t.rt = dev, conn, rt
	if err := t.setup(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Tunnel) setup() error {
	if err := t.rt.addAddress(netip.PrefixFrom(t.addr, 48)); err != nil {
		return err
	}
	return t.rt.route(true, prefix6to4, netip.Prefix{})
}

// Prefix is the tunnel's 6to4 prefix, 2002:WWXX:YYZZ::/48.
func (t *Tunnel) Prefix() netip.Prefix { return t.prefix }

// Addr is the tunnel device's own address, 2002:WWXX:YYZZ::1.
func (t *Tunnel) Addr() netip.Addr { return t.addr }

// Stats returns the counters.
func (t *Tunnel) Stats() Stats { return t.count.stats() }

// SetDefault routes (on) or stops routing IPv6 traffic from our prefix
// to anywhere into the tunnel, with a source-specific default route
// ("default from 2002:WWXX:YYZZ::/48"): a native default route, if any,
// stays for other sources.
func (t *Tunnel) SetDefault(on bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("sixto4: tunnel closed")
	}
	if on == t.defaultOn {
		return nil
	}
	if err := t.rt.route(on, netip.PrefixFrom(netip.IPv6Unspecified(), 0), t.prefix); err != nil {
		return err
	}
	t.defaultOn = on
	return nil
}

// Close removes the device (and with it its address and routes) and
// closes the sockets.
func (t *Tunnel) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	if t.conn != nil {
		if err := t.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if t.dev != nil {
		if err := t.dev.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if t.rt != nil {
		if err := t.rt.close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run moves packets both ways until ctx is done or a device fails; it
// closes the tunnel when it returns. Call it once.
func (t *Tunnel) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { t.Close() })
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- t.tunToNet() }()
	go func() { errc <- t.netToTun() }()
	err := <-errc
	t.Close() // stops the other loop
	err2 := <-errc
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(err, err2)
}

// maxReadErrors is how many failed reads in a row end Run: one is a bad
// packet, a hundred a dead device.
const maxReadErrors = 100

// tunToNet reads IPv6 packets from the TUN device and sends them over
// IPv4, a batch per sendmmsg.
func (t *Tunnel) tunToNet() error {
	n := t.dev.BatchSize()
	bufs := make([][]byte, n)
	for i := range bufs {
		size := tunOffset + t.cfg.MTU + 256
		if i == 0 {
			size = rxBuf // what is not a GSO segment lands in the first buffer, whatever its size
		}
		bufs[i] = make([]byte, size)
	}
	sizes := make([]int, n)
	msgs := make([]ipv4.Message, n)
	addrs := make([]net.IPAddr, n)
	for i := range msgs {
		addrs[i].IP = make(net.IP, 4)
		msgs[i].Buffers = make([][]byte, 1)
		msgs[i].Addr = &addrs[i]
	}
	reply := make([]byte, tunOffset, tunOffset+minIPv6MTU)
	var b batchCounts
	errRun := 0
	for {
		got, err := t.dev.Read(bufs, sizes, tunOffset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errRun >= maxReadErrors {
				return fmt.Errorf("sixto4: read %s: %w", t.cfg.Name, err)
			}
			if !errors.Is(err, tun.ErrTooManySegments) {
				errRun++
			}
			b.drop(TunMalformed)
			b.flush(&t.count, true)
			continue
		}
		errRun = 0
		k := 0
		for i := range got {
			pkt := bufs[i][tunOffset : tunOffset+sizes[i]]
			outer, act, r := t.pol.encapsulate(pkt)
			switch act {
			case send:
				a := outer.As4()
				copy(addrs[k].IP, a[:])
				msgs[k].Buffers[0] = pkt
				k++
				b.bytes += uint64(len(pkt))
				continue
			case replyTooBig, replyNoRoute:
				t.answer(&b, reply, act, pkt)
			}
			b.drop(r)
			t.debugDrop(r, pkt)
		}
		b.packets += uint64(k)
		b.flush(&t.count, true)
		if k > 0 {
			if err := t.sendAll(msgs[:k]); err != nil {
				return err
			}
		}
	}
}

// sendAll sends msgs, skipping (and counting) any the kernel refuses, such
// as one to an unreachable IPv4 destination.
func (t *Tunnel) sendAll(msgs []ipv4.Message) error {
	for len(msgs) > 0 {
		n, err := t.conn.WriteBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("sixto4: send: %w", err)
			}
			// Counted as sent by the caller: take it back.
			t.count.drops[SendFailed].Add(1)
			t.count.outPackets.Add(^uint64(0))
			t.count.outBytes.Add(^uint64(len(msgs[0].Buffers[0]) - 1))
			t.warn.warn(SendFailed, err)
			n = 1
		}
		msgs = msgs[n:]
	}
	return nil
}

// answer writes an ICMPv6 error about pkt back into the TUN device.
func (t *Tunnel) answer(b *batchCounts, reply []byte, act action, pkt []byte) {
	if !mayAnswer(pkt) {
		return
	}
	if !t.icmp.allow(t.cfg.Clock.Now()) {
		b.drop(ICMPLimited)
		return
	}
	typ, param := uint8(icmpUnreachable), uint32(0)
	if act == replyTooBig {
		typ, param = icmpTooBig, uint32(t.cfg.MTU)
	}
	reply = appendICMPv6Error(reply[:tunOffset], t.addr, typ, 0, param, pkt)
	if _, err := t.dev.Write([][]byte{reply}, tunOffset); err != nil {
		b.drop(TunWriteFailed)
		t.warn.warn(TunWriteFailed, err)
		return
	}
	b.icmp++
}

func (t *Tunnel) debugDrop(r Reason, pkt []byte) {
	if !t.log.Enabled(context.Background(), slog.LevelDebug) || !t.debug.allow(t.cfg.Clock.Now()) {
		return
	}
	t.log.Debug("6to4 drop", slog.String("reason", r.String()), slog.Int("len", len(pkt)))
}

// netToTun receives protocol-41 packets, a batch per recvmmsg, checks
// them and writes the inner IPv6 packets to the TUN device in one batch
// (which coalesces TCP segments when the kernel takes offloads).
func (t *Tunnel) netToTun() error {
	msgs := make([]ipv4.Message, rxBatch)
	bufs := make([][]byte, rxBatch)
	for i := range msgs {
		bufs[i] = make([]byte, rxBuf)
		msgs[i].Buffers = [][]byte{bufs[i][tunOffset:]}
	}
	out := make([][]byte, 0, rxBatch)
	var b batchCounts
	errRun := 0
	for {
		n, err := t.conn.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errRun >= maxReadErrors {
				return fmt.Errorf("sixto4: receive: %w", err)
			}
			errRun++
			continue
		}
		errRun = 0
		out = out[:0]
		for i := range n {
			pkt := bufs[i][tunOffset : tunOffset+msgs[i].N]
			off, r := t.pol.decapsulate(pkt)
			if r != 0 {
				b.drop(r)
				t.debugDrop(r, pkt)
				continue
			}
			// The inner packet with tunOffset bytes before it, in the
			// same buffer: no copy.
			out = append(out, bufs[i][off:tunOffset+msgs[i].N])
			b.packets++
			b.bytes += uint64(msgs[i].N - off)
		}
		if len(out) > 0 {
			if _, err := t.dev.Write(out, tunOffset); err != nil {
				if errors.Is(err, os.ErrClosed) {
					return fmt.Errorf("sixto4: write %s: %w", t.cfg.Name, err)
				}
				b.drop(TunWriteFailed)
				t.warn.warn(TunWriteFailed, err)
			}
		}
		b.flush(&t.count, false)
	}
}
