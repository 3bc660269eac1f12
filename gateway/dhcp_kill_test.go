//go:build linux && !nolab

package gateway_test

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
)

// doraClient runs DHCP transactions for synthetic clients from a socket in
// a lab host: scrambled MACs and the broadcast flag, so that replies come
// back to this socket and the server cannot hash its way to an easy load.
type doraClient struct {
	conn *net.UDPConn

	mu      sync.Mutex // guards waiting
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
}

func newDORAClient(t *testing.T, l *lab.Lab, host string) *doraClient {
	t.Helper()
	var conn *net.UDPConn
	err := l.Do(host, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
				if serr == nil {
					serr = unix.BindToDevice(int(fd), lab.HostIf)
				}
			})
			return serr
		}}
		pc, err := lc.ListenPacket(t.Context(), "udp4", "0.0.0.0:68")
		if err != nil {
			return err
		}
		conn = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &doraClient{conn: conn, waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				continue
			}
			c.mu.Lock()
			ch := c.waiting[m.TransactionID]
			c.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return c
}

// scrambledMAC is client i's MAC: a hash, locally administered, unicast.
func scrambledMAC(i int) net.HardwareAddr {
	h := sha256.Sum256([]byte(fmt.Sprint("client", i)))
	m := net.HardwareAddr(h[:6])
	m[0] = m[0]&0xfe | 0x02
	return m
}

// exchange sends m and waits for the reply of type want.
func (c *doraClient) exchange(m *dhcpv4.DHCPv4, want dhcpv4.MessageType, d time.Duration) (*dhcpv4.DHCPv4, error) {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	c.mu.Lock()
	c.waiting[m.TransactionID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, m.TransactionID)
		c.mu.Unlock()
	}()
	if _, err := c.conn.WriteToUDPAddrPort(m.ToBytes(), netip.MustParseAddrPort("255.255.255.255:67")); err != nil {
		return nil, err
	}
	timeout := time.After(d)
	for {
		select {
		case r := <-ch:
			if r.MessageType() == want {
				return r, nil
			}
			if r.MessageType() == dhcpv4.MessageTypeNak {
				return nil, fmt.Errorf("NAK: %s", r.Message())
			}
		case <-timeout:
			return nil, fmt.Errorf("no %v within %v", want, d)
		}
	}
}

// dora gets a lease for mac, or an error.
func (c *doraClient) dora(mac net.HardwareAddr) (netip.Addr, error) {
	disc, err := dhcpv4.NewDiscovery(mac, dhcpv4.WithBroadcast(true))
	if err != nil {
		return netip.Addr{}, err
	}
	offer, err := c.exchange(disc, dhcpv4.MessageTypeOffer, time.Second)
	if err != nil {
		return netip.Addr{}, err
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithBroadcast(true))
	if err != nil {
		return netip.Addr{}, err
	}
	ack, err := c.exchange(req, dhcpv4.MessageTypeAck, time.Second)
	if err != nil {
		return netip.Addr{}, err
	}
	a, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
	return a, nil
}

// TestDHCPLeasesSurviveKill9MidLoad: clients keep arriving while the daemon
// is killed with SIGKILL; after a restart every lease that was ACKed is
// there, and no address belongs to two clients.
func TestDHCPLeasesSurviveKill9MidLoad(t *testing.T) {
	g := startWith(t, labgw.BaseConfig, "\nconfig dhcp 'lan'\n\toption start '20'\n\toption limit '230'\n\toption conflict_detection '0'\n")
	if err := g.l.SetStaticIPv4(lab.LAN1); err != nil {
		t.Fatal(err)
	}
	c := newDORAClient(t, g.l, lab.LAN1)

	const clients = 200
	type ack struct {
		mac  string
		addr netip.Addr
	}
	acks := make(chan ack, clients)
	var killed atomic.Bool
	var wg sync.WaitGroup
	work := make(chan int)
	// Four paced workers: the kill comes a third of the way through by
	// construction, not by racing a fast server.
	for range 4 {
		wg.Go(func() {
			for i := range work {
				if killed.Load() {
					continue // the daemon is dead: no new clients
				}
				mac := scrambledMAC(i)
				if a, err := c.dora(mac); err == nil {
					acks <- ack{mac.String(), a}
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(30 * time.Second) // then the count check below fails
		for len(acks) < clients/3 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		killed.Store(true)
		g.l.Stop(labgw.Daemon, syscall.SIGKILL)
	}()
	for i := range clients {
		work <- i
	}
	close(work)
	wg.Wait()
	<-done
	close(acks)
	var got []ack
	for a := range acks {
		got = append(got, a)
	}
	if len(got) < clients/3 || len(got) == clients {
		t.Fatalf("%d of %d clients ACKed; the kill should have come mid-load", len(got), clients)
	}

	g.restart(syscall.SIGKILL) // already dead: Stop just forgets it
	leases := g.leases()
	byMAC := map[string]netip.Addr{}
	byAddr := map[netip.Addr]string{}
	for _, l := range leases {
		if other, ok := byAddr[l.Addr]; ok {
			t.Fatalf("address %v leased to %s and %s", l.Addr, other, l.MAC)
		}
		byAddr[l.Addr] = l.MAC
		byMAC[l.MAC] = l.Addr
	}
	for _, a := range got {
		if byMAC[a.mac] != a.addr {
			t.Errorf("ACKed %v to %s before the kill; after restart the server has %v", a.addr, a.mac, byMAC[a.mac])
		}
	}
	t.Logf("%d ACKed before SIGKILL, %d leases after restart", len(got), len(leases))

	// The same clients come back: each gets its address again, none twice.
	for _, a := range got[:min(20, len(got))] {
		mac, _ := net.ParseMAC(a.mac)
		addr, err := c.dora(mac)
		if err != nil || addr != a.addr {
			t.Errorf("%s came back and got %v (%v); want %v", a.mac, addr, err, a.addr)
		}
	}
}
