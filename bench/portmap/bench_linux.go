package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gateway/bench/internal/benchmain"
	"gateway/gateway/lab"
)

type bench struct {
	opt   options
	lab   *lab.Lab
	res   *results
	start time.Time
	hosts []netip.Addr // base-load and measurement sources, on lan1
	cl    *client
}

func run(ctx context.Context, opt options) (report string, err error) {
	if os.Geteuid() != 0 {
		return "", errors.New("needs root: it builds network namespaces and programs nftables")
	}
	for _, p := range []string{"ip", "nft", "iperf3", "miniupnpd", "stund", "go"} {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("needs %s (Debian: iproute2 nftables iperf3 miniupnpd-nftables stun-server): %w", p, err)
		}
	}
	b := &bench{opt: opt, start: time.Now()}
	b.res = &results{opt: opt, started: b.start, kernel: kernelRelease(), cpus: runtime.NumCPU(),
		loadStart: benchmain.LoadAverage(), rounds: make(map[string][]*sideRound), hosts: hostsFor(opt)}
	tmp, err := os.MkdirTemp("", "bench-portmap-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	exe := filepath.Join(tmp, "gateway")
	b.logf("building ./cmd/gateway")
	if out, err := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", exe, "./cmd/gateway").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/gateway (run from the module's root): %w\n%s", err, out)
	}
	parent := opt.stateParent
	if parent == "" {
		parent = os.TempDir()
	}
	b.res.stateParent = parent

	name := benchmain.LabName("pm")
	b.logf("building lab %s (namespaces gwl-%s-*)", name, name)
	l, err := lab.Up(ctx, lab.Options{Name: name, Dir: filepath.Join(tmp, "lab")})
	if err != nil {
		return "", err
	}
	b.lab = l
	defer func() {
		b.logf("removing lab %s", name)
		if b.cl != nil {
			b.cl.close()
		}
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	if err := b.setup(ctx); err != nil {
		return "", err
	}
	var sides []side
	for _, s := range opt.sides {
		switch s {
		case miniName:
			sides = append(sides, &miniupnpd{lab: l})
		case oursName:
			sides = append(sides, &ours{lab: l, exe: exe, extra: opt.oursExtra})
		}
	}
	for round := range opt.repeat {
		for i := range sides {
			s := sides[(i+round)%len(sides)]
			sr, err := b.runSide(ctx, s, round, parent)
			b.res.rounds[s.name()] = append(b.res.rounds[s.name()], sr)
			if err != nil {
				if ctx.Err() != nil {
					return "", err
				}
				sr.err = err.Error()
				b.logf("  %s: %v", s.name(), err)
			}
		}
	}
	b.res.elapsed = time.Since(b.start)
	b.res.loadEnd = benchmain.LoadAverage()
	return b.res.markdown(), nil
}

// setup gives lan1 its address and the base load's source addresses,
// starts stund in pub (miniupnpd's STUN server), and opens the client's
// sockets.
func (b *bench) setup(ctx context.Context) error {
	if err := b.lab.SetStaticIPv4(lab.LAN1); err != nil {
		return err
	}
	var cmds strings.Builder
	for i := range b.res.hosts {
		a := netip.AddrFrom4([4]byte{192, 168, 1, byte(100 + i)})
		b.hosts = append(b.hosts, a)
		fmt.Fprintf(&cmds, "addr add %v/24 dev %s\n", a, lab.HostIf)
	}
	c := b.lab.Command(ctx, lab.LAN1, "ip", "-batch", "-")
	c.Stdin = strings.NewReader(cmds.String())
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("addresses on lan1: %w: %s", err, out)
	}
	if _, err := b.lab.Start(lab.Public, "stund", []string{"stund", "-h", lab.PublicAddrs[0].Addr().String(), "-a", lab.PublicAddrs[1].Addr().String()}, ""); err != nil {
		return err
	}
	cl, err := newClient(b.lab, gwLAN, append([]netip.Addr{lan1IP}, b.hosts...))
	if err != nil {
		return err
	}
	b.cl = cl
	return nil
}

// runSide runs one daemon through every load once.
func (b *bench) runSide(ctx context.Context, s side, round int, parent string) (sr *sideRound, err error) {
	sr = &sideRound{round: round, unavailable: make(map[string]string), rss: make(map[int]int64),
		install: make(map[int]time.Duration), samples: make(map[int]*[numOps]sample)}
	b.logf("round %d/%d: %s", round+1, b.opt.repeat, s.name())
	dir, err := os.MkdirTemp(parent, "bench-portmap-state-")
	if err != nil {
		return sr, err
	}
	defer os.RemoveAll(dir)
	if err := s.start(ctx, dir); err != nil {
		return sr, fmt.Errorf("%s: start: %w", s.name(), err)
	}
	defer func() {
		if m, ok := s.(*miniupnpd); ok {
			if lf, rerr := os.ReadFile(filepath.Join(m.dir, "upnp.leases")); rerr == nil {
				b.res.miniLeaseFile = fmt.Sprintf("%d lines, %d bytes", bytes.Count(lf, []byte("\n")), len(lf))
			}
		}
		if o, ok := s.(*ours); ok {
			sr.note = o.note
		}
		if serr := s.stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("%s: stop: %w", s.name(), serr))
		}
	}()
	b.probe(ctx, s, sr)
	time.Sleep(time.Second)
	sr.rssStart = rss(s.pid())
	b.logf("  %s: idle RSS %.1f MiB; not answering: %v", s.name(), mib(sr.rssStart), sr.unavailable)

	if len(sr.unavailable) == 3 {
		return sr, nil // nothing to measure: the report says "not available"
	}
	installed := 0
	for _, load := range b.opt.loads {
		if err := b.install(ctx, sr, installed, load); err != nil {
			return sr, fmt.Errorf("%s: installing %d mappings: %w (log: %s)", s.name(), load, err, s.logTail())
		}
		installed = load
		time.Sleep(time.Second)
		sr.rss[load] = rss(s.pid())
		b.logf("  %s: %d installed in %v (%s; %d retransmissions so far), RSS %.1f MiB", s.name(), load, sr.install[load].Round(time.Millisecond), sr.installVia, sr.installRetries, mib(sr.rss[load]))
		if load == b.opt.iperfAt {
			bps, err := b.iperf(ctx, sr)
			if err != nil {
				sr.iperfErr = err.Error()
				b.logf("  %s: iperf3: %v", s.name(), err)
			} else {
				sr.iperf = bps
				b.logf("  %s: iperf3 through a mapped port: %.2f Gb/s", s.name(), bps/1e9)
			}
		}
		ss := new([numOps]sample)
		sr.samples[load] = ss
		if err := b.measure(ctx, sr, ss); err != nil {
			return sr, fmt.Errorf("%s at %d: %w (log: %s)", s.name(), load, err, s.logTail())
		}
		for o := range numOps {
			if ss[o].n+ss[o].errs > 0 {
				b.logf("  %s at %d: %-24s %7.0f/s p50 %v p99 %v errors %d %s", s.name(), load, o, ss[o].rate(),
					ss[o].quantile(0.5).Round(time.Microsecond), ss[o].quantile(0.99).Round(time.Microsecond), ss[o].errs, ss[o].firstErr)
			}
		}
	}
	return sr, nil
}

// probe finds which protocols answer; a daemon just started may take a
// few seconds (miniupnpd does its STUN tests first).
func (b *bench) probe(ctx context.Context, s side, sr *sideRound) {
	deadline := time.Now().Add(8 * time.Second)
	var err error
	for {
		if err = b.cl.probeNATPMP(lan1IP); err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		sr.unavailable["NAT-PMP"] = err.Error()
	}
	if err := b.cl.probePCP(lan1IP); err != nil {
		sr.unavailable["PCP"] = err.Error()
	}
	// miniupnpd answers 404 for its description for a moment after it
	// has started: try again until the deadline.
	b.cl.control, b.cl.service = nil, ""
	for {
		err = b.lab.Do(lab.LAN1, func() error { return b.cl.discoverUPnP(ctx) })
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		sr.unavailable["UPnP"] = err.Error()
	}
}

// install brings the mappings installed from `from` to `to`, over
// NAT-PMP with requests in flight if it answers, else over UPnP one at a
// time. Mapping i comes from host i mod hosts.
func (b *bench) install(ctx context.Context, sr *sideRound, from, to int) error {
	var jobs []job
	for i := from; i < to; i++ {
		jobs = append(jobs, job{src: b.hosts[i%len(b.hosts)], port: uint16(baseFirst + i)})
	}
	t0 := time.Now()
	switch {
	case sr.unavailable["NAT-PMP"] == "":
		sr.installVia = fmt.Sprintf("NAT-PMP, %d requests in flight", b.opt.window)
		_, retr, err := b.cl.installNATPMP(ctx, jobs, baseLifetime, b.opt.window)
		sr.installRetries += retr
		if err != nil {
			return err
		}
	case sr.unavailable["UPnP"] == "":
		sr.installVia = "UPnP, one at a time"
		err := b.lab.Do(lab.LAN1, func() error {
			for _, j := range jobs {
				if err := b.cl.soap(j.src, addPortMapping(j.port, j.src, j.port, baseLifetime)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	default:
		sr.installVia = "none (no protocol answers)"
		return nil
	}
	sr.install[to] = time.Since(t0)
	return nil
}

// measure times each protocol's requests with the load installed, then
// deletes what they added, so the next load starts from the same table.
func (b *bench) measure(ctx context.Context, sr *sideRound, ss *[numOps]sample) error {
	hosts := b.hosts
	src := func(i int) netip.Addr { return hosts[i%len(hosts)] }
	if sr.unavailable["UPnP"] == "" {
		var added []uint16
		err := b.lab.Do(lab.LAN1, func() error {
			ss[upnpAdd] = b.timed(ctx, func(i int) (int, error) {
				p := uint16(upnpFirst + i)
				err := b.cl.soap(src(i), addPortMapping(p, src(i), p, opLifetime))
				if err == nil {
					added = append(added, p)
				}
				return 0, err
			}, b.opt.ops)
			// Delete exactly what was added: as many requests.
			ss[upnpDelete] = b.timed(ctx, func(i int) (int, error) {
				p := added[i]
				return 0, b.cl.soap(src(int(p)-upnpFirst), deletePortMapping(p))
			}, -len(added))
			return nil
		})
		if err != nil {
			return err
		}
	}
	if sr.unavailable["NAT-PMP"] == "" {
		buf := make([]byte, 1500)
		var added []uint16
		ss[natpmpMapOp] = b.timed(ctx, func(i int) (int, error) {
			p := uint16(natpmpFirst + i)
			_, retries, err := b.cl.natpmp(src(i), natpmpMap{TCP: true, InternalPort: p, SuggestedExternalPort: p, Lifetime: opLifetime}, buf)
			if err == nil {
				added = append(added, p)
			}
			return retries, err
		}, b.opt.ops)
		for _, p := range added {
			if _, _, err := b.cl.natpmp(src(int(p)-natpmpFirst), natpmpMap{TCP: true, InternalPort: p}, buf); err != nil {
				return fmt.Errorf("NAT-PMP delete: %w", err)
			}
		}
	}
	if sr.unavailable["PCP"] == "" {
		buf := make([]byte, 1500)
		type mapped struct {
			req pcpMap
			src netip.Addr
		}
		var added []mapped
		ss[pcpMapOp] = b.timed(ctx, func(i int) (int, error) {
			p := uint16(pcpFirst + i)
			req := pcpMap{Lifetime: opLifetime, Nonce: newNonce(), Protocol: protoTCP, InternalPort: p, SuggestedExternalPort: p}
			_, retries, err := b.cl.pcp(src(i), req, buf)
			if err == nil {
				added = append(added, mapped{req, src(i)})
			}
			return retries, err
		}, b.opt.ops)
		for _, m := range added {
			m.req.Lifetime = 0 // delete: same nonce (RFC 6887 §15)
			if _, _, err := b.cl.pcp(m.src, m.req, buf); err != nil {
				return fmt.Errorf("PCP delete: %w", err)
			}
		}
	}
	return ctx.Err()
}

// timed makes requests one after the other until max requests or
// -op-time (with at least 10 made); a negative max means exactly -max
// requests, without the time limit.
func (b *bench) timed(ctx context.Context, req func(i int) (retries int, err error), max int) sample {
	var s sample
	exact := max < 0
	if exact {
		max = -max
	}
	t0 := time.Now()
	for i := 0; i < max && ctx.Err() == nil; i++ {
		if !exact && i >= 10 && time.Since(t0) >= b.opt.opTime {
			break
		}
		r0 := time.Now()
		retries, err := req(i)
		d := time.Since(r0)
		s.retries += retries
		if err != nil {
			s.errs++
			if s.firstErr == "" {
				s.firstErr = err.Error()
			}
			continue
		}
		s.n++
		s.lat = append(s.lat, d)
	}
	s.elapsed = time.Since(t0)
	return s
}

// iperf maps iperfPort to lan1 (over UPnP, else NAT-PMP, from lan1's own
// address: the newest mapping, after the load) and runs iperf3 from pub
// to the gateway's WAN address through it.
func (b *bench) iperf(ctx context.Context, sr *sideRound) (float64, error) {
	var unmap func() error
	switch {
	case sr.unavailable["UPnP"] == "":
		err := b.lab.Do(lab.LAN1, func() error {
			return b.cl.soap(lan1IP, addPortMapping(iperfPort, lan1IP, iperfPort, opLifetime))
		})
		if err != nil {
			return 0, err
		}
		unmap = func() error {
			return b.lab.Do(lab.LAN1, func() error { return b.cl.soap(lan1IP, deletePortMapping(iperfPort)) })
		}
	case sr.unavailable["NAT-PMP"] == "":
		buf := make([]byte, 1500)
		r, _, err := b.cl.natpmp(lan1IP, natpmpMap{TCP: true, InternalPort: iperfPort, SuggestedExternalPort: iperfPort, Lifetime: opLifetime}, buf)
		if err != nil {
			return 0, err
		}
		if r.MappedExternalPort != iperfPort {
			return 0, fmt.Errorf("NAT-PMP mapped port %d, not %d", r.MappedExternalPort, iperfPort)
		}
		unmap = func() error {
			_, _, err := b.cl.natpmp(lan1IP, natpmpMap{TCP: true, InternalPort: iperfPort}, buf)
			return err
		}
	default:
		return 0, errors.New("no protocol answers: nothing mapped")
	}
	bps, err := b.runIperf(ctx)
	return bps, errors.Join(err, unmap())
}

func (b *bench) runIperf(ctx context.Context) (float64, error) {
	secs := max(1, int(b.opt.iperfTime.Round(time.Second)/time.Second))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	port := strconv.Itoa(iperfPort)
	var srvOut bytes.Buffer
	srv := b.lab.Command(ctx, lab.LAN1, "iperf3", "-s", "-1", "-B", lan1IP.String(), "-p", port)
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	srv.WaitDelay = 2 * time.Second
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("iperf3 server: %w", err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	var out []byte
	var err error
	for try := 0; try < 20; try++ {
		time.Sleep(100 * time.Millisecond) // the server's listen
		c := b.lab.Command(ctx, lab.Public, "iperf3", "-c", gwWAN.String(), "-p", port, "-t", strconv.Itoa(secs), "-J", "--connect-timeout", "2000")
		out, err = c.Output()
		if err == nil || ctx.Err() != nil || !bytes.Contains(out, []byte("connection refused")) {
			break
		}
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	jerr := json.Unmarshal(out, &r)
	if err != nil || jerr != nil || r.Error != "" {
		return 0, fmt.Errorf("iperf3 from pub to %v:%s through the mapping: %v %v %s (server: %s)", gwWAN, port, err, jerr, r.Error, bytes.TrimSpace(srvOut.Bytes()))
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}
