package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// loadSpec is one run of the load generator.
type loadSpec struct {
	clients    int
	window     int           // transactions outstanding at once
	retransmit time.Duration // resend a message unanswered for this long
	tries      int           // sends of one message before the client gives up; 0 = until limit
	limit      time.Duration // the run stops then, whatever is outstanding
	seed       uint64        // picks the clients' MACs and xids
}

// Transaction states.
const (
	stDiscover = iota // DISCOVER sent, waiting for an OFFER
	stRequest         // REQUEST sent, waiting for an ACK
)

type txn struct {
	mac   net.HardwareAddr
	xid   dhcpv4.TransactionID
	state int
	start time.Time // first DISCOVER
	sent  time.Time // last send
	tries int       // sends of the current message
	naks  int
	pkt   []byte     // the current message, for retransmission
	addr  netip.Addr // offered
}

type generator struct {
	spec  loadSpec
	conn  *net.UDPConn
	dst   netip.AddrPort
	freed chan struct{}

	mu      sync.Mutex // guards the fields below
	open    map[dhcpv4.TransactionID]*txn
	res     *loadResult
	byAddr  map[netip.Addr]string
	first   time.Time
	lastAck time.Time
}

// runLoad runs spec against whatever server answers on the lab's link:
// full DORA per client, spec.window transactions at once.
func runLoad(ctx context.Context, spec loadSpec) (*loadResult, error) {
	conn, err := clientSocket()
	if err != nil {
		return nil, err
	}
	g := &generator{
		spec:   spec,
		conn:   conn,
		dst:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), 67),
		freed:  make(chan struct{}, 1),
		open:   make(map[dhcpv4.TransactionID]*txn),
		byAddr: make(map[netip.Addr]string),
		res:    &loadResult{clients: spec.clients, leased: make(map[string]netip.Addr)},
	}
	var wg sync.WaitGroup
	wg.Go(g.read)
	err = g.drive(ctx)
	conn.Close()
	wg.Wait()

	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.res
	r.unfinished = len(g.open)
	if r.acked > 0 {
		r.elapsed = g.lastAck.Sub(g.first)
	}
	slices.Sort(r.latency)
	return r, err
}

// drive starts clients as the window allows and retransmits, until every
// client is done, the limit passes or ctx ends.
func (g *generator) drive(ctx context.Context) error {
	ids := clientIDs(g.spec.seed, g.spec.clients)
	limit := time.NewTimer(g.spec.limit)
	defer limit.Stop()
	tick := time.NewTicker(min(g.spec.retransmit/10, 100*time.Millisecond))
	defer tick.Stop()
	next := 0
	for {
		g.mu.Lock()
		for len(g.open) < g.spec.window && next < len(ids) {
			g.startLocked(ids[next])
			next++
		}
		g.res.started = next
		done := next == len(ids) && len(g.open) == 0
		g.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-limit.C:
			g.mu.Lock()
			g.res.capped = true
			g.mu.Unlock()
			return nil
		case <-g.freed:
		case now := <-tick.C:
			g.retransmit(now)
		}
	}
}

type clientID struct {
	mac net.HardwareAddr
	xid dhcpv4.TransactionID
}

// clientIDs returns n distinct clients. The MACs are scrambled (a hash of
// the index), unicast and locally administered: sequential MACs collide in
// a server that hashes them, and would measure that instead of the server.
func clientIDs(seed uint64, n int) []clientID {
	out := make([]clientID, 0, n)
	macs := make(map[string]bool, n)
	xids := make(map[dhcpv4.TransactionID]bool, n)
	for i := uint64(0); len(out) < n; i++ {
		h := splitmix64(seed ^ splitmix64(i))
		mac := net.HardwareAddr{byte(h>>40)&^1 | 2, byte(h >> 32), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}
		x := splitmix64(h)
		xid := dhcpv4.TransactionID{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}
		if macs[mac.String()] || xids[xid] {
			continue
		}
		macs[mac.String()], xids[xid] = true, true
		out = append(out, clientID{mac, xid})
	}
	return out
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func (g *generator) startLocked(id clientID) {
	now := time.Now()
	if g.first.IsZero() {
		g.first = now
	}
	t := &txn{mac: id.mac, xid: id.xid, start: now}
	g.open[t.xid] = t
	g.discoverLocked(t)
}

func (g *generator) discoverLocked(t *txn) {
	t.state, t.tries = stDiscover, 1
	t.pkt = newMessage(t, dhcpv4.MessageTypeDiscover)
	g.sendLocked(t, time.Now())
}

func (g *generator) sendLocked(t *txn, now time.Time) {
	t.sent = now
	if _, err := g.conn.WriteToUDPAddrPort(t.pkt, g.dst); err != nil {
		g.res.sendErrs++ // the retransmission covers it
	}
}

// newMessage builds a DISCOVER, or the REQUEST of the SELECTING state for
// the offered address. Both ask for a broadcast reply: a unicast one would
// make the server fill its neighbour table (or, with ours, write raw
// frames) for hosts that do not exist, and measure that.
func newMessage(t *txn, typ dhcpv4.MessageType, opts ...dhcpv4.Modifier) []byte {
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithTransactionID(t.xid),
		dhcpv4.WithHwAddr(t.mac),
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
			dhcpv4.OptionDomainNameServer, dhcpv4.OptionDomainName),
	}, opts...)...)
	if err != nil {
		panic(err) // only a failing crypto/rand, for the xid we overwrite
	}
	return m.ToBytes()
}

// retransmit resends what has waited too long and gives up on clients
// that have tried often enough.
func (g *generator) retransmit(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range g.open {
		if now.Sub(t.sent) < g.spec.retransmit {
			continue
		}
		if g.spec.tries > 0 && t.tries >= g.spec.tries {
			g.res.failed++
			g.finishLocked(t)
			continue
		}
		t.tries++
		g.res.retries++
		g.sendLocked(t, now)
	}
}

func (g *generator) finishLocked(t *txn) {
	delete(g.open, t.xid)
	select {
	case g.freed <- struct{}{}:
	default:
	}
}

// read takes replies until the socket is closed.
func (g *generator) read() {
	buf := make([]byte, 2048)
	for {
		n, _, err := g.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		now := time.Now()
		m, err := dhcpv4.FromBytes(buf[:n])
		g.mu.Lock()
		if err != nil {
			g.res.strays++
		} else {
			g.replyLocked(m, now)
		}
		g.mu.Unlock()
	}
}

func (g *generator) replyLocked(m *dhcpv4.DHCPv4, now time.Time) {
	t := g.open[m.TransactionID]
	if t == nil || m.OpCode != dhcpv4.OpcodeBootReply || !slices.Equal(m.ClientHWAddr, t.mac) {
		g.res.strays++
		return
	}
	yiaddr, _ := netip.AddrFromSlice(m.YourIPAddr.To4())
	switch m.MessageType() {
	case dhcpv4.MessageTypeOffer:
		sid := m.ServerIdentifier().To4()
		if t.state != stDiscover || !yiaddr.IsValid() || sid == nil {
			g.res.strays++ // a second OFFER, for a retransmitted DISCOVER
			return
		}
		t.state, t.tries, t.addr = stRequest, 1, yiaddr
		t.pkt = newMessage(t, dhcpv4.MessageTypeRequest,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(m.YourIPAddr)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sid)))
		g.sendLocked(t, now)
	case dhcpv4.MessageTypeAck:
		if t.state != stRequest {
			g.res.strays++
			return
		}
		if yiaddr != t.addr {
			g.res.wrongAddr++
		}
		mac := t.mac.String()
		if other, ok := g.byAddr[yiaddr]; ok && other != mac {
			g.res.dupAddrs++
		}
		g.byAddr[yiaddr] = mac
		g.res.leased[mac] = yiaddr
		g.res.acked++
		g.res.latency = append(g.res.latency, now.Sub(t.start))
		g.lastAck = now
		g.finishLocked(t)
	case dhcpv4.MessageTypeNak:
		g.res.naks++
		t.naks++
		if t.naks >= 3 {
			g.res.failed++
			g.finishLocked(t)
			return
		}
		g.discoverLocked(t) // RFC 2131 3.1: a NAKed client starts over
	default:
		g.res.strays++
	}
}

// clientSocket opens the generator's socket inside nsClient: port 68 on
// the client's veth, broadcast allowed, with a receive buffer large enough
// that the generator never drops a reply.
func clientSocket() (*net.UDPConn, error) {
	var conn *net.UDPConn
	err := inNetns(nsClient, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				s := int(fd)
				serr = errors.Join(
					unix.BindToDevice(s, ifClient),
					unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1),
					unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
					unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20),
				)
			})
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
		if err != nil {
			return fmt.Errorf("client socket in %s: %w", nsClient, err)
		}
		conn = pc.(*net.UDPConn)
		return nil
	})
	return conn, err
}
