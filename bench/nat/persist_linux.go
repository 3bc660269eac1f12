package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"gateway/nat44"
	"gateway/nat44/nat44test"
)

// persistLifetime is the lease the requests ask for (UPnP's
// NewLeaseDuration of a typical torrent client, one hour).
const persistLifetime = time.Hour

// persistHost is the i-th LAN host of the persistence run: requests are
// spread over hosts as the policy's per-host limit (128) requires.
func persistHost(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{192, 168, 1, byte(100 + i/nat44.DefaultHostLimit)})
}

// persistAdds starts nat44 with a fresh state directory and asks for up to
// N mappings one request at a time (UPnP owner, one-hour lifetime), as
// UPnP/NAT-PMP/PCP requests arrive; every request is durable before it
// returns. Then it stops nat44 and checks that a new one reads them all
// back. Bounded by -single-limit.
func (b *bench) persistAdds(ctx context.Context) (err error) {
	parent := b.opt.stateDir
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "bench-nat-state-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	b.logf("persistence run: state directory %s", dir)
	if err := b.expectEmpty(ctx, "before the persistence run"); err != nil {
		return err
	}
	o, err := b.startOurs(ctx, ourOpts{events: true, stateDir: dir})
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			err = errors.Join(err, o.stop())
		}
	}()
	o.n.SetLANPrefixes([]netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")})

	total := b.opt.mappings
	if max := (254 - 100) * nat44.DefaultHostLimit; total > max {
		total = max
	}
	r := persistRun{api: "Map", dir: parent, lifetime: persistLifetime}
	request := func(i int) error {
		host := persistHost(i)
		port := uint16(10000 + i)
		if r.api == "Map" {
			_, err := o.n.Map(nat44.Request{
				Owner: nat44.OwnerUPnP, Client: host, Proto: nat44.TCP,
				ExternalPort: port, Exact: true, Internal: netip.AddrPortFrom(host, port),
				Lifetime: persistLifetime, Description: "bench",
			})
			return err
		}
		return o.n.Add(nat44.Mapping{
			Proto: nat44.TCP, ExternalPort: port, Internal: netip.AddrPortFrom(host, port),
			Owner: nat44.OwnerUPnP, Expires: time.Now().Add(persistLifetime), Lifetime: persistLifetime,
			Description: "bench",
		})
	}
	err = request(0)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		r.api = "Add"
		b.logf("  nat44.NAT.Map is not implemented yet: timing nat44.NAT.Add with the state directory")
	case err != nil:
		return fmt.Errorf("request 1: %w", err)
	default:
		// Start over from an empty table so that every request is timed.
		if err := o.n.Remove(nat44.Key{Proto: nat44.TCP, ExternalPort: 10000}); err != nil {
			return err
		}
	}

	deadline := time.Now().Add(b.opt.singles)
	lastFrom := total - max(total/10, 1)
	var lastStart time.Time
	start := time.Now()
	i := 0
	for ; i < total; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			r.capped = true
			break
		}
		if i == lastFrom {
			lastStart = time.Now()
		}
		if err := request(i); err != nil {
			return fmt.Errorf("request %d: %w", i+1, err)
		}
		if i+1 == 1000 {
			r.firstK, r.firstElapsed = 1000, time.Since(start)
		}
	}
	r.n, r.elapsed = i, time.Since(start)
	if !lastStart.IsZero() {
		r.lastN, r.lastElapsed = i-lastFrom, time.Since(lastStart)
	}
	r.hosts = (i-1)/nat44.DefaultHostLimit + 1
	b.logf("  %d one-mapping %s calls with a state directory took %s (%.0f/s)", r.n, r.api, fmtDur(r.elapsed), float64(r.n)/r.elapsed.Seconds())

	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				r.stateBytes += info.Size()
			}
		}
		return nil
	})

	// What a reply promised is on disk: a new nat44 reads every mapping
	// back from the state directory.
	stopped = true
	if err := o.stop(); err != nil {
		return err
	}
	n2, err := nat44.New(nat44.Config{WAN: "wan", LANs: []string{"lan"}, StateDir: dir,
		Datapath: nat44test.NewFakeDatapath(), Conntrack: noEvents{}})
	if err != nil {
		r.restartFailed = err.Error()
	} else {
		r.afterRestart = len(n2.List())
		// Run with a done context: it installs into the fake, returns,
		// and closes the journal.
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		n2.Run(cctx)
	}
	b.res.persist = &r
	return nil
}
