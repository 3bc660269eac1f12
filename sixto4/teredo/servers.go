package teredo

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// HealthInterval is how often the client checks its standby servers
// (Config.Servers but the one it is qualified with) by one RS from a
// socket of their own: often enough that a failover goes straight to a
// server that answers, seldom enough to cost nothing (one RS and one RA
// per server).
const HealthInterval = 3 * time.Minute

// ServerState is what the client knows of one of its Teredo servers.
type ServerState struct {
	Addr    netip.Addr
	Healthy bool          // it answered its last check (a probe, a qualification or a refresh)
	Checked time.Time     // the last check; zero: never checked
	LastOK  time.Time     // its last answer; zero: never
	RTT     time.Duration // of its last answered probe or refresh
}

// noteServer records a check of server: answered or not, with the
// round-trip time when known (non-zero).
func (c *Client) noteServer(server netip.Addr, ok bool, rtt time.Duration) {
	now := c.clk.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.servers {
		s := &c.servers[i]
		if s.Addr != server {
			continue
		}
		s.Healthy, s.Checked = ok, now
		if ok {
			s.LastOK = now
			if rtt > 0 {
				s.RTT = rtt
			}
		}
	}
}

// pickServer chooses the server to qualify with after failed (invalid:
// none failed): the first healthy one in the configured order, else the
// first never checked, else the one after failed.
func (c *Client) pickServer(failed netip.Addr) (_ netip.Addr, healthy bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.servers {
		if s.Healthy && s.Addr != failed {
			return s.Addr, true
		}
	}
	for _, s := range c.servers {
		if s.Checked.IsZero() && s.Addr != failed {
			return s.Addr, false
		}
	}
	for i, s := range c.servers {
		if s.Addr == failed {
			return c.servers[(i+1)%len(c.servers)].Addr, false
		}
	}
	return c.servers[0].Addr, false
}

// checkStandbys sends one RS to each server the client is not qualified
// with, from the probe socket, every HealthInterval, and records who
// answers. Without a probe socket it only waits for ctx.
func (c *Client) checkStandbys(ctx context.Context, probe net.PacketConn) error {
	interval := c.cfg.HealthInterval
	if probe == nil || interval < 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	if interval == 0 {
		interval = HealthInterval
	}
	qz := c.cfg.Qualifier
	qz.Attempts = 1
	for {
		c.mu.Lock()
		current := c.q.Server
		if !c.q.Address.IsValid() {
			current = netip.Addr{}
		}
		c.mu.Unlock()
		for _, s := range c.cfg.Servers {
			if s == current {
				continue // its refreshes check it
			}
			start := c.clk.Now()
			_, err := qz.solicit(ctx, probe, s, s, false)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.noteServer(s, err == nil, c.clk.Now().Sub(start))
		}
		if err := sleep(ctx, c.clk, interval); err != nil {
			return err
		}
	}
}
