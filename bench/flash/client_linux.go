package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// clients are the DHCP clients of one server: each gets a lease by a full
// DORA, then renews it (REQUEST with ciaddr, broadcast, as in REBINDING,
// so that the client needs no address of its own on the link) every half
// lease, on the simulated schedule.
type clients struct {
	conn *net.UDPConn
	dst  netip.AddrPort
	// bound puts a leased address on the clients' interface: servers
	// answer a REQUEST with ciaddr by unicast to that address (RFC 2131
	// 4.1), so the namespace must own it to answer ARP and receive.
	bound func(netip.Addr) error

	mu      sync.Mutex // guards waiting, acks
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	acks    map[string]ack // by MAC: the last ACK
	stats   clientStats
}

// ack is what a server's ACK promised a client.
type ack struct {
	addr    netip.Addr
	expires time.Time // when the lease ends, by the server's lease time (real clock)
}

type clientStats struct {
	bound, renewals, failed, naks int
}

func newClients(conn *net.UDPConn, bound func(netip.Addr) error) *clients {
	return &clients{conn: conn, bound: bound, dst: netip.MustParseAddrPort("255.255.255.255:67"),
		waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}, acks: map[string]ack{}}
}

// read hands replies to the transactions waiting for them, until the
// socket is closed.
func (c *clients) read() {
	buf := make([]byte, 1500)
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || p.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		c.mu.Lock()
		ch := c.waiting[p.TransactionID]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- p:
			default:
			}
		}
	}
}

// exchange sends p and waits for a reply of one of the types, resending
// every retry, 4 tries.
func (c *clients) exchange(ctx context.Context, p *dhcpv4.DHCPv4, retry time.Duration, types ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	c.mu.Lock()
	c.waiting[p.TransactionID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, p.TransactionID)
		c.mu.Unlock()
	}()
	b := p.ToBytes()
	for range 4 {
		if _, err := c.conn.WriteToUDPAddrPort(b, c.dst); err != nil {
			return nil, err
		}
		t := time.NewTimer(retry)
		for wait := true; wait; {
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
				wait = false
			case r := <-ch:
				for _, ty := range types {
					if r.MessageType() == ty {
						t.Stop()
						return r, nil
					}
				}
			}
		}
	}
	return nil, fmt.Errorf("no %v after 4 tries", types)
}

// bind runs one DORA for mac.
func (c *clients) bind(ctx context.Context, mac net.HardwareAddr, retry time.Duration) error {
	d, err := dhcpv4.NewDiscovery(mac, dhcpv4.WithBroadcast(true))
	if err != nil {
		return err
	}
	offer, err := c.exchange(ctx, d, retry, dhcpv4.MessageTypeOffer)
	if err != nil {
		return fmt.Errorf("%v: DISCOVER: %w", mac, err)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithBroadcast(true))
	if err != nil {
		return err
	}
	return c.finish(ctx, mac, req, retry, false)
}

// renew sends a REQUEST with ciaddr for mac's address.
func (c *clients) renew(ctx context.Context, mac net.HardwareAddr, retry time.Duration) error {
	c.mu.Lock()
	a, ok := c.acks[mac.String()]
	c.mu.Unlock()
	if !ok {
		return c.bind(ctx, mac, retry)
	}
	req, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(mac),
		dhcpv4.WithClientIP(a.addr.AsSlice()), dhcpv4.WithBroadcast(true))
	if err != nil {
		return err
	}
	return c.finish(ctx, mac, req, retry, true)
}

func (c *clients) finish(ctx context.Context, mac net.HardwareAddr, req *dhcpv4.DHCPv4, retry time.Duration, renewal bool) error {
	sent := time.Now()
	r, err := c.exchange(ctx, req, retry, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if err != nil {
		return fmt.Errorf("%v: REQUEST: %w", mac, err)
	}
	addr, _ := netip.AddrFromSlice(r.YourIPAddr.To4())
	if r.MessageType() == dhcpv4.MessageTypeAck && !renewal {
		if err := c.bound(addr); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.MessageType() == dhcpv4.MessageTypeNak {
		c.stats.naks++
		delete(c.acks, mac.String())
		return fmt.Errorf("%v: NAK", mac)
	}
	c.acks[mac.String()] = ack{addr: addr, expires: sent.Add(r.IPAddressLeaseTime(0))}
	if renewal {
		c.stats.renewals++
	} else {
		c.stats.bound++
	}
	return nil
}

// drive runs n clients until ctx ends: client i binds at i*stagger, then
// renews every period (real), its phase spread over the period. Errors are
// counted, not fatal: a client that failed tries again at its next turn.
func (c *clients) drive(ctx context.Context, n int, stagger, period, retry time.Duration) {
	var wg sync.WaitGroup
	for i := range n {
		mac := net.HardwareAddr{0x02, 0xf1, 0x5a, byte(i >> 8), byte(i), 0x01}
		wg.Go(func() {
			if !sleep(ctx, time.Duration(i)*stagger) {
				return
			}
			if err := c.bind(ctx, mac, retry); err != nil && ctx.Err() == nil {
				c.fail()
			}
			for sleep(ctx, period) {
				if err := c.renew(ctx, mac, retry); err != nil && ctx.Err() == nil {
					c.fail()
				}
			}
		})
	}
	wg.Wait()
}

func (c *clients) fail() {
	c.mu.Lock()
	c.stats.failed++
	c.mu.Unlock()
}

func (c *clients) snapshot() (clientStats, map[string]ack) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]ack, len(c.acks))
	for k, v := range c.acks {
		m[k] = v
	}
	return c.stats, m
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
