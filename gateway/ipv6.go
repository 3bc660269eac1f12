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
	// startTeredo starts the Teredo client on the WAN address local,
	// which calls notify when its qualification changes.
	startTeredo func(local netip.Addr, notify func()) teredoTunnel
	startRelay  func() (teredoRelay, error)
	addAddr     func(iface string, p netip.Prefix) error
	delAddr     func(iface string, p netip.Prefix) error
	// addRoute and delRoute set the default route from the LAN's prefix
	// into the Teredo client's device.
	addRoute, delRoute func(iface string, dst, src netip.Prefix) error
	// tunnels tells nat44 the tunnels' interfaces, whether protocol 41
	// may come in, and where NAT66 applies.
	tunnels func(facts.Tunnel)
	publish func(facts.IPv6)
	log     *slog.Logger
}

// uplinkState is what the manager knows of the world.
type uplinkState struct {
	WAN       facts.WAN
	Delegated delegation
}

// uplink chooses the LAN's IPv6 prefix and keeps the system in step: the
// 6to4 tunnel runs while 6to4 is the uplink, the Teredo client while
// nothing better is there, the Teredo relay while the LAN has a global
// prefix, the router holds ::1 of the LAN's /64, and the choice is
// published for the RA service.
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

	teredo       teredoTunnel
	teredoWAN    netip.Addr   // the WAN address it started on
	teredoFailed netip.Addr   // as tunnelFailed
	teredoRoute  netip.Prefix // the source of the default route into it
	relay        teredoRelay
	relayFailed  netip.Addr // as tunnelFailed
	tunnels      facts.Tunnel
	// kick wakes runUplink to apply again (the Teredo client qualified).
	kick chan struct{}
}

// notify asks runUplink to apply the state again.
func (u *uplink) notify() {
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// ended reports whether done is closed.
func ended(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// apply brings the system in line with st. It is called on every change
// of the WAN or the delegation, and when the tunnel ends.
func (u *uplink) apply(st uplinkState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	// A tunnel that ended by itself is not started again until the WAN
	// address changes.
	if u.tunnel != nil && ended(u.tunnel.Done()) {
		u.deps.log.Warn("the 6to4 tunnel stopped", slog.String("service", svcIPv6))
		u.tunnelFailed = u.local
		u.stopTunnelLocked()
	}
	if u.teredo != nil && ended(u.teredo.Done()) {
		u.deps.log.Warn("the Teredo client stopped", slog.String("service", svcIPv6))
		u.teredoFailed = u.teredoWAN
		u.stopTeredoLocked()
	}
	if u.relay != nil && ended(u.relay.Done()) {
		u.deps.log.Warn("the Teredo relay stopped", slog.String("service", svcIPv6))
		u.relayFailed = st.WAN.Addr
		u.stopRelayLocked()
	}
	u.applySixto4Locked(st)
	u.applyTeredoLocked(st)
	in := uplinkInputs{Delegated: st.Delegated.Prefix, Static: u.cfg.Static, ULA: u.ula,
		Teredo: u.teredo != nil && u.teredo.Addr().IsValid()}
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
	case UplinkTeredo:
		next.MTU = teredoMTU
	}
	if u.tunnel != nil {
		if err := u.tunnel.SetDefault(name == UplinkSixto4); err != nil {
			u.deps.log.Error("cannot route IPv6 into the 6to4 tunnel", slog.String("service", svcIPv6), slog.Any("err", err))
		}
	}
	var route netip.Prefix
	if name == UplinkTeredo {
		route = lan
	}
	u.setTeredoRouteLocked(route)
	u.applyRelayLocked(st, name)
	u.publishTunnelsLocked()
	u.setAddrLocked(lan)
	if next != u.cur {
		if next.Prefix != u.cur.Prefix || next.Uplink != u.cur.Uplink {
			u.deps.log.Info("LAN IPv6 prefix", slog.String("service", svcIPv6), slog.String("uplink", name), slog.Any("prefix", lan))
		}
		u.cur = next
		u.deps.publish(next)
	}
}

// applySixto4Locked starts or stops the 6to4 tunnel for st.
func (u *uplink) applySixto4Locked(st uplinkState) {
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
		}
	}
}

// applyTeredoLocked runs the Teredo client when nothing better gives the
// LAN a global prefix (no delegation, no 6to4, no static prefix) and the
// WAN has an IPv4 address of any kind: Teredo works behind NATs, which is
// what it is for. A new WAN address starts it again: the old mapping and
// every peer's trust went with the address.
func (u *uplink) applyTeredoLocked(st uplinkState) {
	want := u.cfg.TeredoClient() && !st.Delegated.Prefix.IsValid() && u.tunnel == nil &&
		!u.cfg.Static.IsValid() && st.WAN.Addr.Is4()
	if u.teredo != nil && (!want || u.teredoWAN != st.WAN.Addr) {
		u.stopTeredoLocked()
	}
	if want && u.teredo == nil && u.teredoFailed != st.WAN.Addr {
		if u.relay != nil { // the same UDP port, and its route to 2001::/32
			u.stopRelayLocked()
		}
		u.teredo, u.teredoWAN, u.teredoFailed = u.deps.startTeredo(st.WAN.Addr, u.notify), st.WAN.Addr, netip.Addr{}
	}
}

func (u *uplink) stopTeredoLocked() {
	u.setTeredoRouteLocked(netip.Prefix{})
	u.teredo.Stop()
	u.teredo, u.teredoWAN = nil, netip.Addr{}
}

func (u *uplink) stopRelayLocked() {
	u.relay.Stop()
	u.relay = nil
}

// setTeredoRouteLocked routes IPv6 from src (invalid: none) into the
// Teredo client's device, where NAT66 gives it the Teredo address.
func (u *uplink) setTeredoRouteLocked(src netip.Prefix) {
	if src == u.teredoRoute {
		return
	}
	def := netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	if u.teredoRoute.IsValid() {
		if err := u.deps.delRoute(teredoIface, def, u.teredoRoute); err != nil {
			u.deps.log.Warn("cannot remove the route into Teredo", slog.String("service", svcIPv6), slog.Any("err", err))
		}
		u.teredoRoute = netip.Prefix{}
	}
	if src.IsValid() {
		if err := u.deps.addRoute(teredoIface, def, src); err != nil {
			u.deps.log.Error("cannot route IPv6 into Teredo", slog.String("service", svcIPv6), slog.Any("err", err))
			u.lastErr = err.Error()
			return
		}
		u.teredoRoute = src
	}
}

// applyRelayLocked runs the Teredo relay while the LAN has a global
// prefix (name is the uplink): LAN hosts then reach Teredo hosts through
// it. With Teredo as the uplink the client itself carries 2001::/32.
func (u *uplink) applyRelayLocked(st uplinkState, name string) {
	want := u.cfg.TeredoRelay && u.teredo == nil && st.WAN.Addr.Is4() &&
		(name == UplinkPD || name == UplinkSixto4 || name == UplinkStatic)
	if u.relay != nil && !want {
		u.stopRelayLocked()
	}
	if want && u.relay == nil && u.relayFailed != st.WAN.Addr {
		r, err := u.deps.startRelay()
		if err != nil {
			u.deps.log.Error("cannot start the Teredo relay", slog.String("service", svcIPv6), slog.Any("err", err))
			u.lastErr = err.Error()
			u.relayFailed = st.WAN.Addr
			return
		}
		u.relay, u.relayFailed = r, netip.Addr{}
	}
}

// publishTunnelsLocked tells the filter which tunnels run.
func (u *uplink) publishTunnelsLocked() {
	var t facts.Tunnel
	if u.tunnel != nil {
		t.Iface, t.SixToFour = u.tname, true
	}
	if u.teredo != nil {
		t.Teredo, t.TeredoAddr = teredoIface, u.teredo.Addr()
	}
	if u.relay != nil {
		t.TeredoRelay = teredoRelayIface
	}
	if t != u.tunnels {
		u.tunnels = t
		u.deps.tunnels(t)
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
}

// close stops the tunnels and removes the router's LAN address.
func (u *uplink) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tunnel != nil {
		u.stopTunnelLocked()
	}
	if u.teredo != nil {
		u.stopTeredoLocked()
	}
	if u.relay != nil {
		u.stopRelayLocked()
	}
	u.publishTunnelsLocked()
	u.setAddrLocked(netip.Prefix{})
}

// IPv6Status is the IPv6 part of `gateway status`.
type IPv6Status struct {
	Uplink    string            `json:"uplink"`
	Prefix    netip.Prefix      `json:"prefix"`    // the LAN's /64
	Delegated netip.Prefix      `json:"delegated"` // from the ISP, if any
	Valid     *time.Time        `json:"valid,omitempty"`
	Sixto4    any               `json:"sixto4,omitempty"` // the tunnel's counters while it runs
	Teredo    any               `json:"teredo,omitempty"` // the client's state while it runs
	Relay     any               `json:"teredo_relay,omitempty"`
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
	if u.teredo != nil {
		s.Teredo = u.teredo.Status()
	}
	if u.relay != nil {
		s.Relay = u.relay.Status()
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
	if u.kick == nil {
		u.kick = make(chan struct{}, 1)
	}
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
		case <-u.kick:
		}
		if grace == nil {
			u.apply(st)
		}
	}
}

// pdGrace is how long the first uplink choice waits for a delegation: a
// DHCPv6 exchange takes well under a second, a reboot's Rebind up to 10 s.
const pdGrace = 5 * time.Second
