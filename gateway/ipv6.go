package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"gateway/internal/facts"
)

const svcIPv6 = "ipv6" // the LAN's IPv6 prefix: delegation, 6to4, static or ULA

// sixto4MTU is the link MTU over 6to4: 1500 less the 20-byte IPv4 header.
const sixto4MTU = 1480

// tunnel6to4 is a running 6to4 tunnel as the uplink manager sees it.
type tunnel6to4 interface {
	Prefix() netip.Prefix // 2002:WWXX:YYZZ::/48
	SetDefault(on bool) error
	Stats() any // for status
	// Stop ends the tunnel and waits for it; after it the TUN device is
	// gone.
	Stop()
	// Done is closed when the tunnel ends by itself (an error).
	Done() <-chan struct{}
}

// delegation is what prefix delegation holds now.
type delegation struct {
	Prefix           netip.Prefix // invalid: none
	Valid, Preferred time.Time
}

// uplinkDeps are what the uplink manager changes in the system, behind
// functions so that unit tests watch them.
type uplinkDeps struct {
	startTunnel func(local netip.Addr) (tunnel6to4, error)
	addAddr     func(iface string, p netip.Prefix) error
	delAddr     func(iface string, p netip.Prefix) error
	// outside tells nat44 the tunnel's interface (or none) and whether
	// protocol 41 may come in.
	outside func(tunnel string, sixto4 bool) error
	publish func(facts.IPv6)
	log     *slog.Logger
}

// uplinkState is what the manager knows of the world.
type uplinkState struct {
	WAN       facts.WAN
	Delegated delegation
}

// uplink chooses the LAN's IPv6 prefix and keeps the system in step: the
// 6to4 tunnel runs while 6to4 is the uplink, the router holds ::1 of the
// LAN's /64, and the choice is published for the RA service.
type uplink struct {
	cfg   *IPv6Config
	lan   string // the LAN interface that gets the router's address
	ula   netip.Prefix
	tname string // the tunnel's interface name
	deps  uplinkDeps

	mu     sync.Mutex // guards the fields below, for status
	tunnel tunnel6to4
	local  netip.Addr   // the tunnel's IPv4 address
	addr   netip.Prefix // the router's address on the LAN
	cur    facts.IPv6
	// tunnelFailed holds the WAN address the tunnel failed on: not
	// tried again until the address changes.
	tunnelFailed netip.Addr
	lastErr      string
}

// apply brings the system in line with st. It is called on every change
// of the WAN or the delegation, and when the tunnel ends.
func (u *uplink) apply(st uplinkState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tunnel != nil {
		select {
		case <-u.tunnel.Done():
			u.deps.log.Warn("the 6to4 tunnel stopped", slog.String("service", svcIPv6))
			u.tunnelFailed = u.local
			u.stopTunnelLocked()
		default:
		}
	}
	// 6to4 runs only as the uplink: with a delegated prefix the LAN's
	// sources are native, and a 6to4 peer refuses native sources that do
	// not come from its relay (RFC 3964 section 5.2).
	want := u.cfg.SixToFour && !st.Delegated.Prefix.IsValid() &&
		st.WAN.Kind == facts.KindPublic && st.WAN.Addr.Is4()
	if u.tunnel != nil && (!want || u.local != st.WAN.Addr) {
		u.stopTunnelLocked()
	}
	if want && u.tunnel == nil && u.tunnelFailed != st.WAN.Addr {
		t, err := u.deps.startTunnel(st.WAN.Addr)
		if err != nil {
			u.deps.log.Error("cannot start 6to4", slog.String("service", svcIPv6), slog.Any("err", err))
			u.lastErr = err.Error()
			u.tunnelFailed = st.WAN.Addr
		} else {
			u.tunnel, u.local, u.tunnelFailed = t, st.WAN.Addr, netip.Addr{}
			if err := u.deps.outside(u.tname, true); err != nil {
				u.deps.log.Error("cannot filter the 6to4 tunnel", slog.String("service", svcIPv6), slog.Any("err", err))
			}
		}
	}
	in := uplinkInputs{Delegated: st.Delegated.Prefix, Static: u.cfg.Static, ULA: u.ula}
	if u.tunnel != nil {
		in.Sixto4 = u.tunnel.Prefix()
	}
	lan, name, err := chooseUplink(in, u.cfg.Subnet)
	if err != nil {
		u.deps.log.Error("cannot use the uplink's prefix", slog.String("service", svcIPv6), slog.Any("err", err))
		u.lastErr = err.Error()
		lan, name = u.ula, UplinkNone
	}
	next := facts.IPv6{Prefix: lan, Uplink: name}
	switch name {
	case UplinkPD:
		next.Valid, next.Preferred = st.Delegated.Valid, st.Delegated.Preferred
	case UplinkSixto4:
		next.MTU = sixto4MTU
	}
	if u.tunnel != nil {
		if err := u.tunnel.SetDefault(name == UplinkSixto4); err != nil {
			u.deps.log.Error("cannot route IPv6 into the 6to4 tunnel", slog.String("service", svcIPv6), slog.Any("err", err))
		}
	}
	u.setAddrLocked(lan)
	if next != u.cur {
		if next.Prefix != u.cur.Prefix || next.Uplink != u.cur.Uplink {
			u.deps.log.Info("LAN IPv6 prefix", slog.String("service", svcIPv6), slog.String("uplink", name), slog.Any("prefix", lan))
		}
		u.cur = next
		u.deps.publish(next)
	}
}

// setAddrLocked gives the router ::1 of lan on the LAN interface, and takes
// the old one away: hosts keep their deprecated addresses from the RA
// until they expire, but the router routes only the current prefix.
func (u *uplink) setAddrLocked(lan netip.Prefix) {
	var want netip.Prefix
	if lan.IsValid() {
		want = netip.PrefixFrom(lan.Addr().Next(), lan.Bits())
	}
	if want == u.addr {
		return
	}
	if want.IsValid() {
		if err := u.deps.addAddr(u.lan, want); err != nil {
			u.deps.log.Error("cannot add the router's LAN address", slog.String("service", svcIPv6), slog.Any("err", err))
			u.lastErr = err.Error()
			return
		}
	}
	if u.addr.IsValid() {
		if err := u.deps.delAddr(u.lan, u.addr); err != nil {
			u.deps.log.Warn("cannot remove the old LAN address", slog.String("service", svcIPv6), slog.Any("err", err))
		}
	}
	u.addr = want
}

func (u *uplink) stopTunnelLocked() {
	u.tunnel.Stop()
	u.tunnel, u.local = nil, netip.Addr{}
	if err := u.deps.outside("", false); err != nil {
		u.deps.log.Error("cannot update the outside interfaces", slog.String("service", svcIPv6), slog.Any("err", err))
	}
}

// close stops the tunnel and removes the router's LAN address.
func (u *uplink) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tunnel != nil {
		u.stopTunnelLocked()
	}
	u.setAddrLocked(netip.Prefix{})
}

// IPv6Status is the IPv6 part of `gateway status`.
type IPv6Status struct {
	Uplink    string            `json:"uplink"`
	Prefix    netip.Prefix      `json:"prefix"`    // the LAN's /64
	Delegated netip.Prefix      `json:"delegated"` // from the ISP, if any
	Valid     *time.Time        `json:"valid,omitempty"`
	Sixto4    any               `json:"sixto4,omitempty"` // the tunnel's counters while it runs
	RA        any               `json:"ra,omitempty"`
	PDDrops   map[string]uint64 `json:"pd_drops,omitempty"` // DHCPv6 replies dropped, by reason
	Error     string            `json:"error,omitempty"`
}

func (u *uplink) status() IPv6Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := IPv6Status{Uplink: u.cur.Uplink, Prefix: u.cur.Prefix, Error: u.lastErr}
	if !u.cur.Valid.IsZero() {
		v := u.cur.Valid
		s.Valid = &v
	}
	if u.tunnel != nil {
		s.Sixto4 = u.tunnel.Stats()
	}
	return s
}

// errNoLAN is returned when the config has no LAN interface for IPv6.
var errNoLAN = errors.New("gateway: IPv6 needs a LAN interface")

// runUplink runs the uplink manager until ctx ends: it follows the WAN
// facts and the delegation (from pd, when not nil) and applies each change.
//
// With prefix delegation on, the first choice waits for the delegation
// (pdGrace at most): choosing 6to4 or the ULA first would give every LAN
// host an address that is deprecated a second later.
func runUplink(ctx context.Context, u *uplink, wans <-chan facts.WAN, delegations <-chan delegation, pdGrace time.Duration) error {
	if u.lan == "" {
		return errNoLAN
	}
	defer u.close()
	var st uplinkState
	tick := time.NewTicker(5 * time.Second) // notices a tunnel that ended
	defer tick.Stop()
	var grace <-chan time.Time
	if u.cfg.PD && pdGrace > 0 {
		t := time.NewTimer(pdGrace)
		defer t.Stop()
		grace = t.C
	} else {
		u.apply(st)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case w := <-wans:
			st.WAN = w
		case dl := <-delegations:
			st.Delegated = dl
			grace = nil
		case <-grace:
			grace = nil
		case <-tick.C:
		}
		if grace == nil {
			u.apply(st)
		}
	}
}

// pdGrace is how long the first uplink choice waits for a delegation: a
// DHCPv6 exchange takes well under a second, a reboot's Rebind up to 10 s.
const pdGrace = 5 * time.Second
