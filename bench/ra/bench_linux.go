package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"gateway/bench/internal/benchmain"
	nsrun "gateway/internal/netns"
	"gateway/ra"
)

// The lab: a router namespace (veth lan0, forwarding on, as a router's
// LAN is) and a host namespace (eth0) joined by one veth pair.
const (
	ifRouter = "lan0"
	ifHost   = "eth0"
)

var (
	prefix = netip.MustParsePrefix("2001:db8:1::/64")
	dns    = netip.MustParseAddr("2001:db8::53")
	// allRouters is where hosts send solicitations (RFC 4861 6.3.7).
	allRouters = netip.MustParseAddr("ff02::2")
)

// source is the i-th link-local address of the host: every solicitation
// of a round leaves from its own, so that no per-source limit (ours:
// 3 answers, then one per 4 s) applies and the same work is measured on
// both sides.
func source(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 12: 0, 13: 1, 14: byte(i >> 8), 15: byte(i)})
}

// warmSource is the address of the i-th readiness probe.
func warmSource(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 13: 2, 14: byte(i >> 8), 15: byte(i)})
}

const warmProbes = 64

type lab struct {
	router, host string
	dir          string
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func sysctl(ns, key, value string) error {
	out, err := exec.Command("ip", "netns", "exec", ns, "sh", "-c", fmt.Sprintf("echo %s > /proc/sys/%s", value, key)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sysctl %s in %s: %w: %s", key, ns, err, out)
	}
	return nil
}

func labUp(n int) (*lab, error) {
	name := benchmain.LabName("bra")
	l := &lab{router: name + "-r", host: name + "-h"}
	dir, err := os.MkdirTemp("", "bench-ra-")
	if err != nil {
		return nil, err
	}
	l.dir = dir
	for _, ns := range []string{l.router, l.host} {
		if err := ip("netns", "add", ns); err != nil {
			return nil, errors.Join(err, l.down())
		}
		if err := errors.Join(
			sysctl(ns, "net/ipv6/conf/all/accept_dad", "0"),
			sysctl(ns, "net/ipv6/conf/default/accept_dad", "0"),
			ip("-n", ns, "link", "set", "lo", "up"),
		); err != nil {
			return nil, errors.Join(err, l.down())
		}
	}
	// The host neither autoconfigures nor solicits by itself: only the
	// benchmark's solicitations are on the link.
	steps := []error{
		sysctl(l.router, "net/ipv6/conf/all/forwarding", "1"),
		sysctl(l.host, "net/ipv6/conf/default/accept_ra", "0"),
		sysctl(l.host, "net/ipv6/conf/default/router_solicitations", "0"),
	}
	if err := errors.Join(steps...); err != nil {
		return nil, errors.Join(err, l.down())
	}
	if err := errors.Join(
		ip("-n", l.router, "link", "add", ifRouter, "type", "veth", "peer", "name", ifHost, "netns", l.host),
		ip("-n", l.router, "link", "set", ifRouter, "up"),
		ip("-n", l.host, "link", "set", ifHost, "up"),
	); err != nil {
		return nil, errors.Join(err, l.down())
	}
	var batch strings.Builder
	for i := range n {
		fmt.Fprintf(&batch, "addr add %s/64 dev %s nodad\n", source(i), ifHost)
	}
	for i := range warmProbes {
		fmt.Fprintf(&batch, "addr add %s/64 dev %s nodad\n", warmSource(i), ifHost)
	}
	cmd := exec.Command("ip", "-n", l.host, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, errors.Join(fmt.Errorf("ip -batch: %w: %s", err, out), l.down())
	}
	return l, nil
}

func (l *lab) down() error {
	var errs []error
	for _, ns := range []string{l.router, l.host} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			errs = append(errs, ip("netns", "del", ns))
		}
	}
	if l.dir != "" {
		errs = append(errs, os.RemoveAll(l.dir))
	}
	return errors.Join(errs...)
}

// inNetns runs fn on a thread in ns; the thread stays locked, so it ends
// with its goroutine instead of going back to the runtime in ns.
func inNetns(ns string, fn func() error) error { return nsrun.Do(ns, fn) }

// side is a daemon under test.
type side interface {
	start(ctx context.Context, l *lab) error
	stop() error
}

// ours is ra.Service, in this process, its socket in the router's
// namespace. It shares the process (and the 2 CPUs) with the client.
type ours struct {
	cancel context.CancelFunc
	done   chan error
}

func (o *ours) start(ctx context.Context, l *lab) error {
	state, err := os.MkdirTemp(l.dir, "ours-")
	if err != nil {
		return err
	}
	s, err := ra.New(ra.Config{Iface: ifRouter, StateDir: state, RDNSS: []netip.Addr{dns}})
	if err != nil {
		return err
	}
	s.Set(ra.Advert{Prefixes: []ra.Prefix{{Prefix: prefix}}, Default: true})
	ctx, o.cancel = context.WithCancel(ctx)
	o.done = make(chan error, 1)
	go func() {
		// Run on a thread in the namespace: the socket is opened
		// there, and stays there.
		o.done <- inNetns(l.router, func() error { return s.Run(ctx) })
	}()
	return nil
}

func (o *ours) stop() error {
	o.cancel()
	return <-o.done
}

// radvd is Debian's radvd with the same prefix, lifetimes and RDNSS; its
// AdvRASolicitedUnicast is on by default, as ours.
type radvd struct {
	cmd *exec.Cmd
}

func (r *radvd) start(ctx context.Context, l *lab) error {
	conf := filepath.Join(l.dir, "radvd.conf")
	text := fmt.Sprintf(`interface %s {
	AdvSendAdvert on;
	MinRtrAdvInterval 200;
	MaxRtrAdvInterval 600;
	AdvDefaultLifetime 1800;
	prefix %s {
		AdvOnLink on;
		AdvAutonomous on;
		AdvValidLifetime 5400;
		AdvPreferredLifetime 2700;
	};
	RDNSS %s {
		AdvRDNSSLifetime 1800;
	};
};
`, ifRouter, prefix, dns)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	r.cmd = exec.Command("ip", "netns", "exec", l.router, "radvd", "-n", "-C", conf,
		"-p", filepath.Join(l.dir, "radvd.pid"), "-m", "stderr")
	r.cmd.Stderr = os.Stderr
	return r.cmd.Start()
}

func (r *radvd) stop() error {
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-done
		return errors.New("radvd did not stop on SIGTERM, killed")
	}
}

// client sends solicitations from the host and times the answers.
type client struct {
	pc      *ipv6.PacketConn
	ifindex int
	rs      []byte
	answers chan answer
}

type answer struct {
	dst netip.Addr
	at  time.Time
}

func newClient(l *lab) (*client, error) {
	c := &client{answers: make(chan answer, 4096)}
	err := inNetns(l.host, func() error {
		ifi, err := net.InterfaceByName(ifHost)
		if err != nil {
			return err
		}
		c.ifindex = ifi.Index
		ic, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		c.pc = ic.IPv6PacketConn()
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeRouterAdvertisement)
		if err := errors.Join(
			c.pc.SetICMPFilter(&f),
			c.pc.SetMulticastHopLimit(255),
			c.pc.SetHopLimit(255),
			c.pc.SetControlMessage(ipv6.FlagDst, true),
		); err != nil {
			ic.Close()
			return err
		}
		c.rs, err = ndp.MarshalMessage(&ndp.RouterSolicitation{Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr},
		}})
		return err
	})
	if err != nil {
		return nil, err
	}
	go c.read()
	return c, nil
}

func (c *client) read() {
	buf := make([]byte, 2048)
	for {
		_, cm, _, err := c.pc.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			close(c.answers)
			return
		}
		if cm == nil {
			continue
		}
		dst, _ := netip.AddrFromSlice(cm.Dst)
		select {
		case c.answers <- answer{dst, at}:
		default:
		}
	}
}

func (c *client) solicit(src netip.Addr) error {
	_, err := c.pc.WriteTo(c.rs, &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: c.ifindex, HopLimit: 255},
		// The zone by index: a name would be looked up in the
		// namespace of whichever thread runs this.
		&net.IPAddr{IP: allRouters.AsSlice(), Zone: strconv.Itoa(c.ifindex)})
	return err
}

// await waits until deadline for the answer to src; multicast RAs seen
// meanwhile are counted.
func (c *client) await(src netip.Addr, deadline time.Time) (at time.Time, ok bool, multicast int) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		select {
		case a, open := <-c.answers:
			if !open {
				return time.Time{}, false, multicast
			}
			if a.dst == src {
				return a.at, true, multicast
			}
			if a.dst.IsMulticast() {
				multicast++
			}
		case <-t.C:
			return time.Time{}, false, multicast
		}
	}
}

// drain forgets answers that came late.
func (c *client) drain() {
	for {
		select {
		case <-c.answers:
		default:
			return
		}
	}
}

// sample is one side's round.
type sample struct {
	side      string
	round     int
	latencies []time.Duration
	timeouts  int
	multicast int
	ready     time.Duration // from start to the first answer
}

func measure(ctx context.Context, o options, l *lab, c *client, name string, s side, round int) (sample, error) {
	res := sample{side: name, round: round}
	if err := ip("-n", l.router, "neigh", "flush", "dev", ifRouter); err != nil {
		return res, err
	}
	start := time.Now()
	if err := s.start(ctx, l); err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	stopped := false
	defer func() {
		if !stopped {
			s.stop()
		}
	}()
	ready := false
	for i := range warmProbes {
		if err := c.solicit(warmSource(i)); err != nil {
			return res, err
		}
		if _, ok, _ := c.await(warmSource(i), time.Now().Add(150*time.Millisecond)); ok {
			ready = true
			break
		}
	}
	if !ready {
		return res, fmt.Errorf("%s: no answer to %d solicitations in %v", name, warmProbes, time.Since(start).Round(time.Millisecond))
	}
	res.ready = time.Since(start)
	time.Sleep(100 * time.Millisecond)
	c.drain()
	for i := range o.rs {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		src := source(i)
		sent := time.Now()
		if err := c.solicit(src); err != nil {
			return res, err
		}
		at, ok, mc := c.await(src, sent.Add(o.wait))
		res.multicast += mc
		if ok {
			res.latencies = append(res.latencies, at.Sub(sent))
		} else {
			res.timeouts++
		}
		time.Sleep(time.Until(sent.Add(o.gap)))
	}
	stopped = true
	if err := s.stop(); err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}

func run(ctx context.Context, o options) (string, error) {
	if _, err := exec.LookPath("radvd"); err != nil && strings.Contains(o.sides, "radvd") {
		return "", errors.New("radvd not installed (Debian package radvd)")
	}
	l, err := labUp(o.rs)
	if err != nil {
		return "", err
	}
	defer l.down()
	c, err := newClient(l)
	if err != nil {
		return "", err
	}
	defer c.pc.Close()

	load := benchmain.LoadAverage()
	sides := strings.Split(o.sides, ",")
	var samples []sample
	for round := range o.rounds {
		order := slices.Clone(sides)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, name := range order {
			var s side
			switch name {
			case "ours":
				s = &ours{}
			case "radvd":
				s = &radvd{}
			default:
				return "", fmt.Errorf("unknown side %q", name)
			}
			fmt.Fprintf(os.Stderr, "round %d: %s\n", round+1, name)
			smp, err := measure(ctx, o, l, c, name, s, round+1)
			if err != nil {
				return report(o, load, samples), err
			}
			samples = append(samples, smp)
		}
	}
	return report(o, load, samples), nil
}

// quantile of sorted d (nearest rank).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func us(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func report(o options, load string, samples []sample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# RS → RA answer latency: ours vs radvd\n\n")
	fmt.Fprintf(&b, "%d solicitations per side and round, %v apart, each from its own link-local address, to ff02::2 with a source link-layer address; an answer is the RA unicast back to that address, waited for %v. %d round(s), order alternating. Load average at start: %s. %s\n\n",
		o.rs, o.gap, o.wait, o.rounds, load, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "| side | answered | timeouts | multicast RAs seen | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	all := map[string][]time.Duration{}
	var names []string
	for _, s := range samples {
		if _, ok := all[s.side]; !ok {
			names = append(names, s.side)
		}
		all[s.side] = append(all[s.side], s.latencies...)
	}
	stats := map[string][3]time.Duration{}
	for _, n := range names {
		d := slices.Clone(all[n])
		slices.Sort(d)
		to, mc := 0, 0
		for _, s := range samples {
			if s.side == n {
				to += s.timeouts
				mc += s.multicast
			}
		}
		stats[n] = [3]time.Duration{quantile(d, 0.5), quantile(d, 0.99)}
		mx := time.Duration(0)
		if len(d) > 0 {
			mx = d[len(d)-1]
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s | %s | %s |\n", n, len(d), to, mc, us(quantile(d, 0.5)), us(quantile(d, 0.9)), us(quantile(d, 0.99)), us(mx))
	}
	if o1, ok1 := stats["ours"]; ok1 {
		if r, ok2 := stats["radvd"]; ok2 && r[0] > 0 && r[1] > 0 {
			fmt.Fprintf(&b, "\nours/radvd: p50 %.2f, p99 %.2f. Goal (issue 10): ours at most radvd's latency (p50 ratio ≤ 1): %s.\n",
				float64(o1[0])/float64(r[0]), float64(o1[1])/float64(r[1]), map[bool]string{true: "met", false: "NOT met"}[o1[0] <= r[0]])
		}
	}
	fmt.Fprintf(&b, "\n<details><summary>per round</summary>\n\n| round | side | answered | timeouts | p50 | p99 | ready after |\n|---:|---|---:|---:|---:|---:|---:|\n")
	for _, s := range samples {
		d := slices.Clone(s.latencies)
		slices.Sort(d)
		fmt.Fprintf(&b, "| %d | %s | %d | %d | %s | %s | %v |\n", s.round, s.side, len(d), s.timeouts, us(quantile(d, 0.5)), us(quantile(d, 0.99)), s.ready.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\n</details>\n")
	return b.String()
}
