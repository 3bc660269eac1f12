package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gateway/internal/events"
	"gateway/internal/supervise"
	"gateway/internal/throughput"
	"gateway/nat44"
	"gateway/web"
)

// The services that feed the panel.
const (
	svcEvents     = "events"     // turns the services' news into the event log
	svcThroughput = "throughput" // samples the WAN's byte counters
)

// panelData is what the API changes (the config file) and shows live (the
// event log, the WAN throughput, the start time).
type panelData struct {
	started time.Time
	conf    *configEditor
	events  *events.Ring
	tput    *throughput.Sampler
}

// addPanelData sets up the config editor for the file at path, the event
// log and the throughput sampler, and adds the services that feed them.
func (d *Daemon) addPanelData(path string) {
	d.panel = panelData{
		started: time.Now(),
		events:  events.New(events.DefaultSize, nil),
		conf:    &configEditor{path: path, running: d.config, lan: d.lanIPv4, apply: d.applyConfig},
		tput: throughput.New(throughput.Config{Read: func() (uint64, uint64, error) {
			return byteCounters(d.config().WAN)
		}}),
	}
	d.sup.Add(svcEvents, d.runEvents)
	d.sup.Add(svcThroughput, d.panel.tput.Run)
}

// lanIPv4 is iface's IPv4 address on the facts board, if it has one.
func (d *Daemon) lanIPv4(iface string) (netip.Prefix, bool) {
	l, ok := d.facts.LAN.Get()
	if !ok {
		return netip.Prefix{}, false
	}
	return l.IPv4(iface)
}

// Config implements web.Configurable.
func (d *Daemon) Config() web.Config { return d.panel.conf }

// Events implements web.Live.
func (d *Daemon) Events(after uint64) []events.Event { return d.panel.events.After(after) }

// Throughput implements web.Live.
func (d *Daemon) Throughput() (time.Duration, []throughput.Sample) {
	return d.panel.tput.Interval(), d.panel.tput.Samples()
}

// Online implements web.Live from the kernel's ARP table.
func (d *Daemon) Online(addrs []netip.Addr) map[netip.Addr]bool {
	f, err := os.Open("/proc/net/arp")
	if err != nil {
		return nil
	}
	defer f.Close()
	return onlineFrom(f, addrs)
}

// onlineFrom reads /proc/net/arp: an entry with the ATF_COM flag (0x2)
// has a link-layer address the kernel holds as REACHABLE, STALE, DELAY or
// PROBE: the host answered lately. No probing: that is the kernel's.
func onlineFrom(r io.Reader, addrs []netip.Addr) map[netip.Addr]bool {
	want := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		want[a] = false
	}
	sc := bufio.NewScanner(r)
	sc.Scan() // the header
	for sc.Scan() {
		f := strings.Fields(sc.Text()) // IP, HW type, Flags, HW address, Mask, Device
		if len(f) < 4 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32)
		if _, asked := want[a]; asked && err == nil && flags&0x2 != 0 {
			want[a] = true
		}
	}
	return want
}

// byteCounters reads iface's received and sent bytes from sysfs.
func byteCounters(iface string) (rx, tx uint64, err error) {
	read := func(name string) (uint64, error) {
		b, err := os.ReadFile(filepath.Join("/sys/class/net", iface, "statistics", name))
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	rx, err1 := read("rx_bytes")
	tx, err2 := read("tx_bytes")
	return rx, tx, errors.Join(err1, err2)
}

// eventPoll is how often the event log looks at the DHCP leases and the
// services' states, which have no feed.
const eventPoll = 3 * time.Second

// runEvents feeds the event log: the mapping service's change feed, the
// WAN address and the IPv6 uplink from the facts board, and, by polling,
// the DHCP leases (a device joined or left) and the services' states.
// Refusals are logged where the protocols ask the mapping service
// (refusing, below).
func (d *Daemon) runEvents(ctx context.Context) error {
	ev := d.panel.events
	wans, stopW := d.facts.WAN.Subscribe()
	defer stopW()
	v6s, stopV := d.facts.IPv6.Subscribe()
	defer stopV()
	var (
		feed     <-chan nat44.Event
		stopFeed = func() {}
		feedOf   *nat44.NAT
		lastWAN  netip.Addr
		leases   map[string]netip.Addr // MAC → address; nil until the first look
		states   = map[string]supervise.State{}
	)
	defer func() { stopFeed() }()
	tick := time.NewTicker(eventPoll)
	defer tick.Stop()
	look := func() {
		if n := d.currentNAT(); feed == nil && n != feedOf {
			// A new NAT (the service restarted): follow its feed.
			feedOf = n
			feed, stopFeed = n.Subscribe()
		}
		leases = d.leaseEvents(leases)
		for _, s := range d.sup.Status() {
			// A failure, and the comeback after one; not the comings
			// and goings of a reload.
			switch prev := states[s.Name]; {
			case s.State == supervise.Backoff && prev != supervise.Backoff:
				ev.Add(events.KindService, netip.Addr{}, fmt.Sprintf("%s failed and restarts: %s", s.Name, s.LastError))
			case s.State == supervise.Running && prev == supervise.Backoff:
				ev.Add(events.KindService, netip.Addr{}, fmt.Sprintf("%s runs again", s.Name))
			}
			states[s.Name] = s.State
		}
	}
	look()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			look()
		case e, ok := <-feed:
			if !ok {
				feed = nil // the NAT stopped; look() follows the next one
				stopFeed()
				continue
			}
			mappingEvent(ev, e)
		case w := <-wans:
			if w.Addr != lastWAN {
				lastWAN = w.Addr
				msg := "the WAN has no IPv4 address"
				if w.Addr.IsValid() {
					msg = fmt.Sprintf("WAN address %v (%v)", w.Addr, w.Kind)
				}
				ev.Add(events.KindWAN, netip.Addr{}, msg)
			}
		case v := <-v6s:
			msg := "no IPv6 on the LAN"
			if v.Prefix.IsValid() {
				msg = fmt.Sprintf("IPv6 uplink %s, LAN prefix %v", v.Uplink, v.Prefix)
			}
			ev.Add(events.KindIPv6, netip.Addr{}, msg)
		}
	}
}

// leaseEvents logs the devices that joined or left since prev (MAC →
// address) and returns the leases now; nil prev only takes note.
func (d *Daemon) leaseEvents(prev map[string]netip.Addr) map[string]netip.Addr {
	srv := d.DHCP()
	if srv == nil {
		return prev // off or restarting: its leases are not gone
	}
	now := map[string]netip.Addr{}
	names := map[string]string{}
	for _, l := range srv.Leases() {
		now[l.MAC] = l.Addr
		names[l.MAC] = l.Hostname
	}
	if prev == nil {
		return now
	}
	for mac, a := range now {
		if old, ok := prev[mac]; !ok || old != a {
			d.panel.events.Add(events.KindLease, a, fmt.Sprintf("%s joined: %s got %v", nameOr(names[mac], mac), mac, a))
		}
	}
	for mac, a := range prev {
		if _, ok := now[mac]; !ok {
			d.panel.events.Add(events.KindLease, a, fmt.Sprintf("%s left: the lease of %v ended", mac, a))
		}
	}
	return now
}

func nameOr(name, mac string) string {
	if name != "" {
		return name
	}
	return "a device"
}

// mappingEvent logs a change of the mapping state.
func mappingEvent(ev *events.Ring, e nat44.Event) {
	m, p := e.Mapping, e.Pinhole
	desc := func(d string) string {
		if d == "" {
			return ""
		}
		return fmt.Sprintf(" (%q)", d)
	}
	switch e.Kind {
	case nat44.MappingAdded:
		ev.Add(events.KindMapping, m.Internal.Addr(), fmt.Sprintf("%s opened %s port %d to %v%s", m.Owner, m.Proto, m.ExternalPort, m.Internal, desc(m.Description)))
	case nat44.MappingRemoved:
		ev.Add(events.KindMapping, m.Internal.Addr(), fmt.Sprintf("%s port %d to %v closed (%s)", m.Proto, m.ExternalPort, m.Internal, e.Reason))
	case nat44.PinholeAdded:
		ev.Add(events.KindMapping, p.Internal.Addr(), fmt.Sprintf("%s opened an IPv6 pinhole to %s %v%s", p.Owner, p.Proto, p.Internal, desc(p.Description)))
	case nat44.PinholeRemoved:
		ev.Add(events.KindMapping, p.Internal.Addr(), fmt.Sprintf("IPv6 pinhole to %s %v closed (%s)", p.Proto, p.Internal, e.Reason))
	}
}

// refusing logs a request that the mapping service refused, with the
// host and the reason; a mapping service that is down is no refusal.
func (d *Daemon) refusing(owner nat44.Owner, host netip.Addr, what string, err error) {
	if err == nil || errors.Is(err, nat44.ErrNoWAN) || errors.Is(err, nat44.ErrNotFound) {
		return
	}
	d.panel.events.Add(events.KindRefused, host, fmt.Sprintf("%s request from %v for %s refused: %v", owner, host, what, err))
}

// mapRefused logs a refusal of a protocol's mapping request; without an
// event log (a Daemon built by hand in tests) it logs nothing.
func (d *Daemon) mapRefused(r nat44.Request, err error) {
	if d.panel.events == nil || err == nil {
		return
	}
	d.refusing(r.Owner, r.Client, fmt.Sprintf("%s port %d", r.Proto, r.ExternalPort), err)
}

// pinholeRefused logs a refusal of a protocol's pinhole request.
func (d *Daemon) pinholeRefused(r nat44.PinholeRequest, err error) {
	if d.panel.events == nil || err == nil {
		return
	}
	d.refusing(r.Owner, r.Client, fmt.Sprintf("an IPv6 pinhole to %s %v", r.Proto, r.Internal), err)
}
