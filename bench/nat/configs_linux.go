package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"gateway/gateway/lab"
	"gateway/nat44"
)

// refConfig is the configuration the others are compared with.
const refConfig = "masq"

// config is one way of setting up the gateway.
type config struct {
	configInfo
	// up installs the configuration in the gateway, which holds no rules
	// yet, and checks what is installed; down removes it. Both run once
	// per round.
	up func(ctx context.Context, round int) (down func() error, err error)
	// after, if set, runs once the measurements of a round are done, with
	// the configuration still in place.
	after func(ctx context.Context, round int) error
	// metrics, if set, are the only ones taken in this configuration.
	metrics []metric
}

func (b *bench) linearName() string { return "linear" + countName(b.opt.mappings) }
func (b *bench) oursName() string   { return "ours" + countName(b.opt.mappings) }

// p2pModes are the UDP filtering modes that P2P apps want, measured beside
// the default (address-and-port-dependent, oursN).
var p2pModes = []nat44.Filtering{nat44.AddressDependent, nat44.EndpointIndependent}

// p2pName names the configuration of ours with N mappings in filtering f.
func (b *bench) p2pName(f nat44.Filtering) string {
	short := map[nat44.Filtering]string{nat44.AddressDependent: "adf", nat44.EndpointIndependent: "eif"}[f]
	return b.oursName() + "-" + short
}

// configs lists the configurations in the order of the report.
func (b *bench) configs() []config {
	n := b.opt.mappings
	ports := mappedPorts(n)
	var big *oursNAT // ours with n mappings, between up and down
	cs := []config{
		{
			configInfo: configInfo{refConfig, "the kernel's plain masquerade, loaded with `nft -f` (fw4 without mappings): masquerade on oifname wan, one DNAT rule per tested port, forward filter accepting established flows and DNATed ones and dropping the rest from the WAN."},
			up: func(ctx context.Context, _ int) (func() error, error) {
				rs := masqRuleset()
				if _, err := b.loadRuleset(ctx, rs); err != nil {
					return nil, err
				}
				return b.flushRuleset(ctx), b.expect(ctx, rs.shape(), "with "+refConfig)
			},
		},
		{
			configInfo: configInfo{b.linearName(), fmt.Sprintf("what miniupnpd installs for %d mappings (ANCHORS.md): masq plus one DNAT rule per mapping in a chain that prerouting jumps to, and one `ip daddr … tcp dport … accept` rule per mapping in a chain that forward jumps to before its established-flow accept; the tested ports come last. Loaded with one `nft -f`.", n)},
			up: func(ctx context.Context, _ int) (func() error, error) {
				rs := linearRuleset(ports)
				took, err := b.loadRuleset(ctx, rs)
				if err != nil {
					return nil, err
				}
				b.res.linearLoad = append(b.res.linearLoad, took)
				return b.flushRuleset(ctx), b.expect(ctx, rs.shape(), "with "+b.linearName())
			},
		},
		{
			configInfo: configInfo{"ours0", "our nat44 (`table inet gateway`: masquerade, DNAT through one map keyed by proto . port, forward filter), with only the two tested ports mapped."},
			up: func(ctx context.Context, _ int) (func() error, error) {
				o, err := b.startOurs(ctx, ourOpts{events: true})
				if err != nil {
					return nil, err
				}
				if err := o.n.Add(mappings(testPortsOf(ports))...); err != nil {
					return nil, errors.Join(fmt.Errorf("add the tested ports: %w", err), o.stop())
				}
				return o.stop, b.expectOurs(ctx, 2, "with ours0")
			},
		},
		{
			configInfo: configInfo{b.oursName(), fmt.Sprintf("our nat44 with %d mappings (the tested ports among them) added through the Go API in one Add batch.", n)},
			up: func(ctx context.Context, _ int) (func() error, error) {
				o, err := b.startOurs(ctx, ourOpts{events: true})
				if err != nil {
					return nil, err
				}
				ms := mappings(ports)
				t0 := time.Now()
				err = o.n.Add(ms...)
				took := time.Since(t0)
				if err != nil {
					return nil, errors.Join(fmt.Errorf("add %d mappings: %w", len(ms), err), o.stop())
				}
				b.res.batchAdd = append(b.res.batchAdd, took)
				b.logf("  %s: Add of %d mappings in one batch took %s", b.oursName(), len(ms), fmtDur(took))
				big = o
				return func() error { big = nil; return o.stop() }, b.expectOurs(ctx, n, "with "+b.oursName())
			},
			after: func(ctx context.Context, round int) error {
				return b.mappingOps(ctx, big, ports, round)
			},
		},
	}
	if b.opt.p2p {
		for _, f := range p2pModes {
			name := b.p2pName(f)
			cs = append(cs, config{
				configInfo: configInfo{name, fmt.Sprintf("our nat44 as %s (%d mappings in one Add batch), with UDP filtering %s: nat44's conntrack event listener is on, as in a home router configured for P2P apps and games. New connections/s only.", b.oursName(), n, f)},
				metrics:    []metric{connOut, connIn},
				up: func(ctx context.Context, _ int) (func() error, error) {
					o, err := b.startOurs(ctx, ourOpts{events: true, filtering: f})
					if err != nil {
						return nil, err
					}
					if err := o.n.Add(mappings(ports)...); err != nil {
						return nil, errors.Join(fmt.Errorf("add %d mappings: %w", n, err), o.stop())
					}
					return o.stop, b.expectOurs(ctx, n, "with "+name)
				},
			})
		}
	}
	if b.opt.diagCT {
		name := b.oursName() + "-noct"
		cs = append(cs, config{
			configInfo: configInfo{name, fmt.Sprintf("diagnostic (-diag-ct): as %s, but nat44 gets a Conntrack that delivers no flow events, to show what its conntrack event listener costs.", b.oursName())},
			up: func(ctx context.Context, _ int) (func() error, error) {
				o, err := b.startOurs(ctx, ourOpts{})
				if err != nil {
					return nil, err
				}
				if err := o.n.Add(mappings(ports)...); err != nil {
					return nil, errors.Join(fmt.Errorf("add %d mappings: %w", n, err), o.stop())
				}
				return o.stop, b.expectOurs(ctx, n, "with "+name)
			},
		})
	}
	return cs
}

// noEvents is a Conntrack that delivers no flow events.
type noEvents struct{}

func (noEvents) Listen(ctx context.Context, _ func([]nat44.FlowEvent), _ func(nat44.FlowEvent)) error {
	<-ctx.Done()
	return nil
}

func (noEvents) Sessions(netip.Addr) ([]nat44.Session, error) { return nil, errors.ErrUnsupported }

// mappingOps times removing every mapping in one batch and, in the first
// round, adding them again one Add call at a time, as UPnP clients do.
func (b *bench) mappingOps(ctx context.Context, o *oursNAT, ports []uint16, round int) error {
	ms := mappings(ports)
	keys := make([]nat44.Key, len(ms))
	for i, m := range ms {
		keys[i] = m.Key()
	}
	t0 := time.Now()
	err := o.n.Remove(keys...)
	took := time.Since(t0)
	if err != nil {
		return fmt.Errorf("remove %d mappings: %w", len(keys), err)
	}
	b.res.batchRemove = append(b.res.batchRemove, took)
	b.logf("  %s: Remove of %d mappings in one batch took %s", b.oursName(), len(keys), fmtDur(took))
	if err := b.expectOurs(ctx, 0, "after the batch Remove"); err != nil {
		return err
	}
	if round > 0 || b.opt.singles == 0 {
		return nil
	}

	// One Add per mapping, bounded by count (all of them) and by time.
	deadline := time.Now().Add(b.opt.singles)
	lastFrom := len(ms) - max(len(ms)/10, 1)
	var s singleAdds
	var lastStart time.Time
	start := time.Now()
	added := keys[:0:0]
	for i, m := range ms {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			s.capped = true
			break
		}
		if i == lastFrom {
			lastStart = time.Now()
		}
		if err := o.n.Add(m); err != nil {
			return fmt.Errorf("single add %d: %w", i+1, err)
		}
		added = append(added, m.Key())
	}
	s.n, s.elapsed = len(added), time.Since(start)
	if !lastStart.IsZero() {
		s.lastN, s.lastElapsed = len(added)-lastFrom, time.Since(lastStart)
	}
	b.res.single = s
	b.logf("  %s: %d single-mapping Add calls took %s (%.0f/s)", b.oursName(), s.n, fmtDur(s.elapsed), float64(s.n)/s.elapsed.Seconds())
	if err := b.expectOurs(ctx, len(added), "after the single adds"); err != nil {
		return err
	}
	if err := o.n.Remove(added...); err != nil {
		return fmt.Errorf("remove the single adds: %w", err)
	}
	return nil
}

func testPortsOf(ports []uint16) []uint16 { return ports[len(ports)-2:] }

// mappings maps each port to the same port of lanHost.
func mappings(ports []uint16) []nat44.Mapping {
	ms := make([]nat44.Mapping, len(ports))
	for i, p := range ports {
		ms[i] = nat44.Mapping{Proto: nat44.TCP, ExternalPort: p, Internal: netip.AddrPortFrom(lanHost, p), Owner: "bench"}
	}
	return ms
}

// loadRuleset loads rs into the gateway with one `nft -f` and returns how
// long nft took.
func (b *bench) loadRuleset(ctx context.Context, rs ruleset) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	_, err := b.cmd(ctx, lab.Gateway, rs.text(), "nft", "-f", "-")
	took := time.Since(t0)
	if err != nil {
		// nft -f is one transaction, but make sure.
		cctx, ccancel := cleanupContext(ctx)
		defer ccancel()
		return 0, errors.Join(err, b.flushRuleset(cctx)())
	}
	return took, nil
}

// flushRuleset returns the function that empties the gateway's ruleset;
// it works after ctx is cancelled.
func (b *bench) flushRuleset(ctx context.Context) func() error {
	return func() error {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		_, err := b.cmd(cctx, lab.Gateway, "", "nft", "flush", "ruleset")
		return err
	}
}

// expectOurs checks that the gateway holds our table alone, with n
// elements in the mapping map. The rest of the table is nat44's business.
func (b *bench) expectOurs(ctx context.Context, n int, when string) error {
	got, err := b.ruleset(ctx)
	if err != nil {
		return err
	}
	want := newShape()
	want.Tables["inet "+nat44.TableName] = true
	for k := range got.Chains {
		want.Chains[k] = -1
	}
	for _, c := range []string{"prerouting", "postrouting", "forward"} {
		want.Chains["inet "+nat44.TableName+" "+c] = -1
	}
	for k := range got.Elems {
		want.Elems[k] = -1
	}
	want.Elems["inet "+nat44.TableName+" fwd4"] = n
	if d := want.diff(got); d != "" {
		return fmt.Errorf("gateway ruleset %s: %s", when, d)
	}
	return nil
}

// oursNAT is a running nat44 service in the gateway's namespace.
type oursNAT struct {
	n      *nat44.NAT
	ns     *os.File
	cancel context.CancelFunc
	done   chan struct{}
	err    error // of Run, once done is closed
}

// ourOpts say how to start nat44.
type ourOpts struct {
	events    bool // nat44 hears the kernel's conntrack events; else none
	filtering nat44.Filtering
	stateDir  string // "" keeps no state
	policy    nat44.Policy
}

// startOurs starts nat44 in the gateway with the lab's WAN address and no
// mappings.
func (b *bench) startOurs(ctx context.Context, oo ourOpts) (*oursNAT, error) {
	ns, err := os.Open(filepath.Join("/run/netns", b.lab.NS(lab.Gateway)))
	if err != nil {
		return nil, err
	}
	fd := int(ns.Fd())
	dp, err := nat44.NewNFTables(fd)
	if err != nil {
		ns.Close()
		return nil, err
	}
	var ct nat44.Conntrack = nat44.NewKernelConntrack(fd)
	if !oo.events {
		ct = noEvents{}
	}
	n, err := nat44.New(nat44.Config{
		WAN:       lab.GatewayWAN,
		LANs:      []string{lab.GatewayLAN},
		Filtering: oo.filtering,
		StateDir:  oo.stateDir,
		Policy:    oo.policy,
		Datapath:  dp,
		Conntrack: ct,
		Logger:    slog.New(b.warn),
	})
	if err != nil {
		dp.Close()
		ns.Close()
		return nil, err
	}
	// Run's context is ours, not ctx: stop ends it in order, also after
	// an interrupt.
	rctx, cancel := context.WithCancel(context.Background())
	o := &oursNAT{n: n, ns: ns, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		o.err = n.Run(rctx)
	}()
	select {
	case <-n.Ready():
	case <-o.done:
		ns.Close()
		return nil, fmt.Errorf("nat44: %w", o.err)
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), o.stop())
	case <-time.After(30 * time.Second):
		return nil, errors.Join(errors.New("nat44 not ready after 30 s"), o.stop())
	}
	if err := n.SetWAN(lab.WANAddr.Addr()); err != nil {
		return nil, errors.Join(fmt.Errorf("nat44: set WAN: %w", err), o.stop())
	}
	return o, nil
}

// stop ends Run, which removes the table, and waits for it.
func (o *oursNAT) stop() error {
	o.cancel()
	defer o.ns.Close()
	select {
	case <-o.done:
		if o.err != nil {
			return fmt.Errorf("nat44: %w", o.err)
		}
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("nat44: Run did not return 30 s after cancel")
	}
}
