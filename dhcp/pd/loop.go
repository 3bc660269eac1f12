package pd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"

	"gateway/dhcp/dhcp6"
)

// rebootRebindWait bounds the Rebind that confirms a remembered lease
// after a restart: with no answer by then the client solicits (with the
// old prefix as a hint) rather than waiting, without IPv6, for a valid
// lifetime that may last days. It is CNF_MAX_RD, the bound RFC 8415 puts
// on the Confirm that plays this role for addresses.
const rebootRebindWait = 10 * time.Second

var (
	errNoAnswer = errors.New("pd: no answer")
	errClosed   = errors.New("pd: socket closed")
)

type phase int

const (
	phaseSolicit phase = iota
	phaseRequest
	phaseBound
	phaseRenew
	phaseRebind
)

// loop runs the client's state machine (RFC 8415 section 18.2) until ctx
// is done (nil) or the socket fails.
func (c *Client) loop(ctx context.Context) error {
	ph := phaseSolicit
	var offer Lease // what the next Request asks for
	reboot := false
	if l := c.st.Lease; l != nil && l.Prefix.IsValid() && c.clock.Now().Before(l.Valid) {
		// A remembered lease: Rebind rather than Confirm, which cannot
		// carry prefixes, or Renew, which needs the same server: RFC
		// 8415 section 18.2.12 has a requesting router that restarts
		// with delegated prefixes Rebind them. Not reported until a
		// server confirms it.
		c.cur = *l
		ph, reboot = phaseRebind, true
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		switch ph {
		case phaseSolicit:
			l, err := c.exchange(ctx, request{Type: dhcp6.Solicit, Prefix: c.st.Hint}, solicitRT, time.Time{})
			if err != nil {
				return exitErr(ctx, err)
			}
			offer, ph = l, phaseRequest

		case phaseRequest:
			sid := dhcp6.DUID(offer.Server)
			if sid.Validate() != nil {
				ph = phaseSolicit
				continue
			}
			l, err := c.exchange(ctx, request{Type: dhcp6.Request, ServerID: sid, Prefix: offer.Prefix, Addr: offer.Addr.Addr()}, requestRT, time.Time{})
			if err == nil && l.Prefix.IsValid() {
				c.bind(l)
				ph = phaseBound
				continue
			}
			if errors.Is(err, errClosed) || ctx.Err() != nil {
				return exitErr(ctx, err)
			}
			c.log.Info("pd: request failed", slog.Any("err", err))
			c.withdraw()
			ph = phaseSolicit

		case phaseBound:
			until := c.cur.T1
			if c.cur.Valid.Before(until) {
				until = c.cur.Valid
			}
			if err := c.idle(ctx, until); err != nil {
				return exitErr(ctx, err)
			}
			ph = phaseRenew
			if !c.clock.Now().Before(c.cur.Valid) {
				c.log.Warn("pd: lease expired", slog.String("prefix", c.cur.Prefix.String()))
				c.withdraw()
				ph = phaseSolicit
			}

		case phaseRenew, phaseRebind:
			r := request{Type: dhcp6.Renew, Prefix: c.cur.Prefix, Addr: c.cur.Addr.Addr()}
			p, end := renewRT, c.cur.T2
			if ph == phaseRebind {
				r.Type, p, end = dhcp6.Rebind, rebindRT, c.cur.Valid
				if reboot {
					end = minTime(end, c.clock.Now().Add(rebootRebindWait))
				}
			} else {
				sid := dhcp6.DUID(c.cur.Server)
				if sid.Validate() != nil {
					ph = phaseRebind
					continue
				}
				r.ServerID = sid
			}
			l, err := c.exchange(ctx, r, p, end)
			var se *StatusError
			switch {
			case errors.Is(err, errClosed) || ctx.Err() != nil:
				return exitErr(ctx, err)
			case err == nil && l.Prefix.IsValid():
				reboot = false
				c.bind(l)
				ph = phaseBound
			case errors.As(err, &se) && se.Where == "IA_PD" && se.Code == dhcp6.NoBinding:
				// "the client sends a Request message to reestablish an
				// IA with the server" (RFC 8415 section 18.2.10.1).
				offer = c.cur
				offer.Server = l.Server
				ph = phaseRequest
			case errors.Is(err, errNoAnswer) && ph == phaseRenew:
				ph = phaseRebind
			default:
				// No answer until the end of the valid lifetime, the
				// prefix taken back (lifetime 0, NoPrefixAvail): start
				// again, with the old prefix as the hint.
				c.log.Warn("pd: prefix withdrawn", slog.String("prefix", c.cur.Prefix.String()), slog.Any("err", err))
				reboot = false
				c.withdraw()
				ph = phaseSolicit
			}
		}
	}
}

func exitErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// idle waits until t, dropping what arrives meanwhile.
func (c *Client) idle(ctx context.Context, t time.Time) error {
	timer := c.clock.NewTimer(t.Sub(c.clock.Now()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return nil
		case _, ok := <-c.pkts:
			if !ok {
				return errClosed
			}
			c.drop("unexpected", nil)
		}
	}
}

// exchange sends r, retransmitting it as p says until end (zero: no end),
// and returns the lease of the answer that ends the exchange: for a
// Solicit the best Advertise of the first RT, or the first one after it
// (section 18.2.1); otherwise the first Reply. A Reply with a status
// other than Success ends it with a *StatusError, except UnspecFail and
// UseMulticast, which mean "try again" (section 18.2.10); for a Release
// any Reply ends it. No answer in time returns errNoAnswer.
func (c *Client) exchange(ctx context.Context, r request, p retrans, end time.Time) (Lease, error) {
	r.XID = [3]byte{byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32())}
	r.ClientID, r.IAID, r.Address, r.HintLen = c.duid, c.iaid, c.cfg.Address, c.cfg.HintLen
	solicit := r.Type == dhcp6.Solicit
	want := dhcp6.Reply
	if solicit {
		want = dhcp6.Advertise
	}
	start := c.clock.Now()
	b := backoff{p: p, rnd: c.rnd, first: solicit}
	var best Lease
	var buf []byte
	bestPref := -1
	firstRT := true
	for {
		rt, ok := b.next()
		if !ok {
			return Lease{}, errNoAnswer
		}
		now := c.clock.Now()
		if !end.IsZero() {
			if !now.Before(end) {
				return Lease{}, errNoAnswer
			}
			rt = min(rt, end.Sub(now))
		}
		r.Elapsed = now.Sub(start)
		wire, err := r.message().Append(buf[:0])
		if err != nil {
			// Only a bug gets here (a DUID or a prefix the codec refuses).
			return Lease{}, err
		}
		buf = wire
		if err := c.conn.Send(wire); err != nil {
			// A link-local address still tentative, a link down: the
			// next retransmission may work.
			c.log.Debug("pd: send", slog.String("type", r.Type.String()), slog.Any("err", err))
		}
		timer := c.clock.NewTimer(rt)
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return Lease{}, ctx.Err()
			case <-timer.C:
				if bestPref >= 0 {
					return best, nil
				}
				firstRT = false
				break wait
			case pkt, ok := <-c.pkts:
				if !ok {
					timer.Stop()
					return Lease{}, errClosed
				}
				m, err := dhcp6.ParseMessage(pkt)
				if err != nil {
					c.drop("malformed", err)
					continue
				}
				if m.TransactionID != r.XID {
					c.drop("xid", nil)
					continue
				}
				if m.Type != want {
					c.drop("type", nil)
					continue
				}
				if r.Type == dhcp6.Release {
					timer.Stop()
					return Lease{}, nil
				}
				l, err := parseReply(m, c.duid, c.iaid, c.clock.Now())
				var se *StatusError
				switch {
				case errors.As(err, &se) && se.Where == "message" && (se.Code == dhcp6.UnspecFail || se.Code == dhcp6.UseMulticast):
					c.drop("status-retry", err)
					continue
				case err != nil && (solicit || !errors.As(err, &se)):
					// An Advertise without prefixes is ignored (section
					// 18.2.9); a malformed Reply too.
					c.drop("rejected", err)
					continue
				case err != nil:
					timer.Stop()
					return l, err
				case !solicit:
					timer.Stop()
					return l, nil
				case !l.Prefix.IsValid():
					c.drop("rejected", fmt.Errorf("pd: advertise without a prefix"))
					continue
				}
				pref := int(m.Preference)
				if pref == 255 || !firstRT {
					timer.Stop()
					return l, nil
				}
				if pref > bestPref {
					best, bestPref = l, pref
				}
			}
		}
	}
}

// bind takes l as the lease: the address on the link, the state on disk,
// the news to the caller.
func (c *Client) bind(l Lease) {
	now := c.clock.Now()
	if c.cur.Addr.IsValid() && c.cur.Addr != l.Addr {
		if err := c.link.DelAddr(c.cur.Addr); err != nil {
			c.log.Warn("pd: removing the old address", slog.String("addr", c.cur.Addr.String()), slog.Any("err", err))
		}
	}
	if l.Addr.IsValid() {
		if err := c.link.SetAddr(l.Addr, l.AddrPreferred.Sub(now), l.AddrValid.Sub(now)); err != nil {
			c.log.Warn("pd: setting the address", slog.String("addr", l.Addr.String()), slog.Any("err", err))
		}
	}
	if c.cur.Prefix != l.Prefix {
		c.log.Info("pd: prefix delegated", slog.String("prefix", l.Prefix.String()),
			slog.Time("valid", l.Valid), slog.String("addr", l.Addr.String()))
	}
	c.cur = l
	c.save(&l, l.Prefix)
	c.report(l, true)
}

// withdraw drops the current lease, if any, and tells the caller if it
// had been told of it.
func (c *Client) withdraw() {
	if c.cur.Addr.IsValid() {
		if err := c.link.DelAddr(c.cur.Addr); err != nil {
			c.log.Warn("pd: removing the address", slog.String("addr", c.cur.Addr.String()), slog.Any("err", err))
		}
	}
	hint := c.st.Hint
	if c.cur.Prefix.IsValid() {
		hint = c.cur.Prefix
	}
	c.cur = Lease{}
	if c.st.Lease != nil || c.st.Hint != hint {
		c.save(nil, hint)
	}
	c.mu.Lock()
	was := c.held
	c.mu.Unlock()
	if was {
		c.report(Lease{}, false)
	}
}

func (c *Client) save(l *Lease, hint netip.Prefix) {
	c.st.Lease, c.st.Hint = l, hint
	if err := saveState(c.cfg.StateDir, c.st); err != nil {
		// The lease still holds in memory; only a restart would lose it.
		c.log.Error("pd: saving the lease", slog.Any("err", err))
	}
}

func (c *Client) report(l Lease, held bool) {
	c.mu.Lock()
	c.lease, c.held = l, held
	c.mu.Unlock()
	c.notify(l)
}

// release sends a Release for the current lease (section 18.2.7), for
// at most ReleaseTimeout, and withdraws it whatever the answer.
func (c *Client) release() error {
	if !c.cur.Prefix.IsValid() {
		return nil
	}
	c.mu.Lock()
	held := c.held
	c.mu.Unlock()
	if held {
		sid := dhcp6.DUID(c.cur.Server)
		err := sid.Validate()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ReleaseTimeout)
			_, err = c.exchange(ctx, request{Type: dhcp6.Release, ServerID: sid, Prefix: c.cur.Prefix, Addr: c.cur.Addr.Addr()}, releaseRT, time.Time{})
			cancel()
		}
		if err != nil {
			c.log.Info("pd: release unanswered", slog.Any("err", err))
		}
	}
	c.withdraw()
	return nil
}
