package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gateway/bench/internal/benchmain"
	"gateway/sixto4"
)

var (
	wanA   = netip.MustParseAddr("192.0.2.2")
	wanB   = netip.MustParseAddr("198.51.100.2")
	relay4 = netip.MustParseAddr("203.0.113.2") // configured, never used: A→B is direct
)

// runTunnel is the child: one Router-mode tunnel with the default route
// on, "ready" on stdout once it is up, its Stats as JSON on stdout when
// SIGTERM ends it.
func runTunnel(ctx context.Context, o tunnelOptions) error {
	local, err := netip.ParseAddr(o.local)
	if err != nil {
		return fmt.Errorf("-local: %w", err)
	}
	relay, _ := netip.ParseAddr(o.relay)
	t, err := sixto4.New(sixto4.Config{
		Name: o.name, Local: local, Relay: relay, AllowDocumentation: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	if err := t.SetDefault(true); err != nil {
		t.Close()
		return err
	}
	if o.prof != "" {
		f, err := os.Create(o.prof)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fmt.Println("ready")
	err = t.Run(ctx)
	s := t.Stats()
	drops := map[string]uint64{}
	for r, n := range s.Drops {
		drops[r.String()] = n
	}
	json.NewEncoder(os.Stdout).Encode(struct {
		sixto4.Stats
		Drops map[string]uint64
	}{s, drops})
	return errors.Join(err, t.Close())
}

type bench struct {
	opt     options
	ns      map[string]string // role → namespace name
	tunnels map[string]*child
	log     io.Writer
}

type child struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr bytes.Buffer
	stats  string
}

func run(ctx context.Context, opt options) (string, error) {
	if opt.tunnel.on {
		return "", runTunnel(ctx, opt.tunnel)
	}
	if os.Geteuid() != 0 {
		return "", errors.New("needs root (network namespaces, TUN devices)")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return "", errors.New("needs iperf3 (Debian package iperf3)")
	}
	b := &bench{opt: opt, ns: map[string]string{}, tunnels: map[string]*child{}, log: os.Stderr}
	defer b.teardown()
	load := benchmain.LoadAverage()
	if err := b.setup(ctx); err != nil {
		return "", err
	}
	kinds := []kind{tcp4, tcp6, udp4, udp6}
	if opt.wanRate != "" {
		kinds = append(kinds, tcp4WAN, tcp6WAN)
	}
	samples := map[kind][]sample{}
	for round := range opt.repeat {
		order := slices.Clone(kinds)
		for range round {
			order = append(order[1:], order[0]) // rotate: drift spreads over all
		}
		for _, k := range order {
			s, err := b.measure(ctx, k)
			if err != nil {
				return b.report(samples, load), fmt.Errorf("%s, round %d: %w", k, round+1, err)
			}
			fmt.Fprintf(b.log, "round %d %s: %s\n", round+1, k, s)
			samples[k] = append(samples[k], s)
		}
	}
	b.stopTunnels()
	return b.report(samples, load), nil
}

func (b *bench) sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (b *bench) ip(role string, args string) error {
	return b.sh(append([]string{"ip", "-n", b.ns[role]}, strings.Fields(args)...)...)
}

func (b *bench) setup(ctx context.Context) error {
	id := benchmain.LabName("")[:6]
	for _, role := range []string{"inet", "a", "b"} {
		name := "bs4-" + id + "-" + role
		if err := b.sh("ip", "netns", "add", name); err != nil {
			return err
		}
		b.ns[role] = name
		if err := b.ip(role, "link set lo up"); err != nil {
			return err
		}
	}
	if err := b.sh("ip", "netns", "exec", b.ns["inet"], "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	for _, s := range []struct{ role, dev, net string }{{"a", "ia", "192.0.2"}, {"b", "ib", "198.51.100"}} {
		steps := []func() error{
			func() error {
				return b.sh("ip", "-n", b.ns["inet"], "link", "add", s.dev, "type", "veth", "peer", "name", "wan", "netns", b.ns[s.role])
			},
			func() error { return b.ip("inet", "addr add "+s.net+".1/24 dev "+s.dev) },
			func() error { return b.ip("inet", "link set "+s.dev+" up") },
			func() error { return b.ip(s.role, "addr add "+s.net+".2/24 dev wan") },
			func() error { return b.ip(s.role, "link set wan up") },
			func() error { return b.ip(s.role, "route add default via "+s.net+".1") },
		}
		for _, f := range steps {
			if err := f(); err != nil {
				return err
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for role, local := range map[string]netip.Addr{"a": wanA, "b": wanB} {
		c := &child{cmd: exec.Command("ip", "netns", "exec", b.ns[role], exe, "-tunnel", "-local", local.String(), "-relay", relay4.String())}
		if b.opt.tunnel.prof != "" {
			c.cmd.Args = append(c.cmd.Args, "-tunnel-cpuprofile", b.opt.tunnel.prof+"."+role)
		}
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			return err
		}
		c.stdout = bufio.NewReader(out)
		c.cmd.Stderr = &c.stderr
		if err := c.cmd.Start(); err != nil {
			return err
		}
		b.tunnels[role] = c
		ready := make(chan error, 1)
		go func() {
			line, err := c.stdout.ReadString('\n')
			if err == nil && line != "ready\n" {
				err = fmt.Errorf("said %q", line)
			}
			ready <- err
		}()
		select {
		case err := <-ready:
			if err != nil {
				return fmt.Errorf("tunnel in %s: %w: %s", role, err, bytes.TrimSpace(c.stderr.Bytes()))
			}
		case <-time.After(10 * time.Second):
			return fmt.Errorf("tunnel in %s not up after 10 s: %s", role, bytes.TrimSpace(c.stderr.Bytes()))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stopTunnels ends the children with SIGTERM and keeps their Stats.
func (b *bench) stopTunnels() {
	for _, c := range b.tunnels {
		if c.cmd.ProcessState != nil {
			continue
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		rest, _ := io.ReadAll(c.stdout)
		c.stats = strings.TrimSpace(string(rest))
		c.cmd.Wait()
	}
}

func (b *bench) teardown() {
	b.stopTunnels()
	for _, n := range b.ns {
		exec.Command("ip", "netns", "del", n).Run()
	}
}

type kind int

const (
	tcp4 kind = iota
	tcp6
	udp4
	udp6
	tcp4WAN // the same, through a WAN-rate bottleneck (tbf in inet toward B)
	tcp6WAN
	numKinds
)

func (k kind) String() string {
	return [...]string{"TCP IPv4", "TCP 6to4", "UDP-64 IPv4", "UDP-64 6to4", "TCP IPv4 at WAN rate", "TCP 6to4 at WAN rate"}[k]
}

func (k kind) is6() bool { return k == tcp6 || k == udp6 || k == tcp6WAN }

// prepare sets up what kind k measures through and returns the undo.
func (b *bench) prepare(k kind) (undo func(), err error) {
	switch k {
	case tcp4WAN, tcp6WAN:
		if err := b.sh("tc", "-n", b.ns["inet"], "qdisc", "add", "dev", "ib", "root", "tbf", "rate", b.opt.wanRate, "burst", "256kb", "latency", "20ms"); err != nil {
			return nil, err
		}
		return func() { b.sh("tc", "-n", b.ns["inet"], "qdisc", "del", "dev", "ib", "root") }, nil
	}
	return func() {}, nil
}

type sample struct {
	bps, pps float64
	bytes    float64 // received
	cpu      float64 // seconds of CPU of both tunnel processes during the measurement
}

func (s sample) String() string {
	return fmt.Sprintf("%.0f Mbit/s, %.0f packets/s, CPU %.2f s for %.0f MB", s.bps/1e6, s.pps, s.cpu, s.bytes/1e6)
}

type iperfResult struct {
	End struct {
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Packets       int64   `json:"packets"`
			LostPackets   int64   `json:"lost_packets"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

const iperfPort = 5201

func (b *bench) measure(ctx context.Context, k kind) (sample, error) {
	var s sample
	src, dst := wanA.String(), wanB.String()
	undo, err := b.prepare(k)
	if err != nil {
		return s, err
	}
	defer undo()
	if k.is6() {
		a, _ := sixto4.RouterAddr(wanA)
		d, _ := sixto4.RouterAddr(wanB)
		src, dst = a.String(), d.String()
	}
	var extra []string
	if k == udp4 || k == udp6 {
		extra = []string{"-u", "-l", "64", "-b", "0"}
	}
	cpu0 := b.tunnelCPU()
	r, err := b.iperf(ctx, src, dst, extra...)
	if err != nil {
		return s, err
	}
	s.cpu = b.tunnelCPU() - cpu0
	sr := r.End.SumReceived
	s.bps, s.bytes = sr.BitsPerSecond, sr.Bytes
	if sr.Seconds > 0 {
		s.pps = float64(sr.Packets-sr.LostPackets) / sr.Seconds
	}
	return s, nil
}

// tunnelCPU is the CPU time (user and system) both tunnel processes have
// used, in seconds.
func (b *bench) tunnelCPU() float64 {
	var sum float64
	for _, c := range b.tunnels {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): state is
		// field 3, utime 14, stime 15.
		f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		sum += (u + st) / 100 // USER_HZ is 100 on Linux
	}
	return sum
}

// iperf runs a one-shot iperf3 server on dst in B and a client from src
// in A.
func (b *bench) iperf(ctx context.Context, src, dst string, extra ...string) (iperfResult, error) {
	var r iperfResult
	secs := max(1, int(b.opt.duration.Round(time.Second).Seconds()))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	port := strconv.Itoa(iperfPort)
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", b.ns["b"], "iperf3", "-s", "-1", "-B", dst, "-p", port)
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return r, err
	}
	defer func() {
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			srv.Process.Kill()
			<-done
		}
	}()
	if err := waitListening(srv.Process.Pid, iperfPort); err != nil {
		return r, fmt.Errorf("iperf3 server: %w: %s", err, bytes.TrimSpace(srvOut.Bytes()))
	}
	args := append([]string{"netns", "exec", b.ns["a"], "iperf3", "-c", dst, "-B", src, "-p", port, "-t", strconv.Itoa(secs), "-J"}, extra...)
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		return r, fmt.Errorf("iperf3 %s: %v (output: %v)", strings.Join(args, " "), err, jerr)
	}
	if r.Error != "" || err != nil {
		return r, fmt.Errorf("iperf3 %s: %v: %s", strings.Join(args, " "), err, r.Error)
	}
	return r, nil
}

// waitListening waits (5 s at most) until the process pid, or the
// namespace it is in, has a TCP socket listening on port.
func waitListening(pid int, port int) error {
	want := fmt.Sprintf(":%04X ", port)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range []string{"tcp", "tcp6"} {
			data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, want) && strings.Contains(line, " 0A ") {
					return nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("not listening after 5 s")
}

func median(s []sample, f func(sample) float64) float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (b *bench) report(samples map[kind][]sample, load string) string {
	var w strings.Builder
	fmt.Fprintf(&w, "# bench/sixto4: 6to4 through our tunnels vs plain IPv4\n\n")
	fmt.Fprintf(&w, "%s, %d round(s) of %v per measurement, load average %s at the start (now %s), %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), b.opt.repeat, b.opt.duration, load, benchmain.LoadAverage(), kernel())
	fmt.Fprintf(&w, "A (192.0.2.2, 2002:c000:202::1) → inet → B (198.51.100.2, 2002:c633:6402::1); medians.\n\n")
	fmt.Fprintf(&w, "| measurement | plain IPv4 | 6to4 (ours) | 6to4 / IPv4 |\n|---|---:|---:|---:|\n")
	bps := func(s sample) float64 { return s.bps }
	pps := func(s sample) float64 { return s.pps }
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	t4, t6 := median(samples[tcp4], bps), median(samples[tcp6], bps)
	w4, w6 := median(samples[tcp4WAN], bps), median(samples[tcp6WAN], bps)
	u4, u6 := median(samples[udp4], pps), median(samples[udp6], pps)
	fmt.Fprintf(&w, "| TCP throughput, veth path unbounded (Mbit/s) | %.0f | %.0f | %s |\n", t4/1e6, t6/1e6, ratio(t6, t4))
	if b.opt.wanRate != "" {
		fmt.Fprintf(&w, "| TCP throughput through a %s WAN bottleneck (Mbit/s) | %.0f | %.0f | %s |\n", b.opt.wanRate, w4/1e6, w6/1e6, ratio(w6, w4))
	}
	fmt.Fprintf(&w, "| 64-byte UDP received (packets/s) | %.0f | %.0f | %s |\n\n", u4, u6, ratio(u6, u4))
	var cpu, gb float64
	for _, k := range []kind{tcp6, tcp6WAN} {
		for _, s := range samples[k] {
			cpu += s.cpu
			gb += s.bytes / 1e9
		}
	}
	if gb > 0 {
		fmt.Fprintf(&w, "CPU time of the two tunnel processes (both ends) per GB carried (TCP runs): %.2f s/GB, %.2f s/GB per end.\n\n", cpu/gb, cpu/gb/2)
	}
	goal := func(name string, a, b float64) {
		if a > 0 && b > 0 {
			verdict := "met"
			if b/a < 0.7 {
				verdict = "NOT met"
			}
			fmt.Fprintf(&w, "- 6to4 TCP at least 0.70 of plain IPv4, %s: %s (%.2f)\n", name, verdict, b/a)
		}
	}
	fmt.Fprintf(&w, "Goal (issue 10):\n\n")
	goal("veth path unbounded", t4, t6)
	goal("at the WAN rate "+b.opt.wanRate, w4, w6)
	fmt.Fprintf(&w, "\nPlain IPv4 over veth moves 64 KiB TSO/GSO segments end to end; the tunnel's raw socket sends one 1480-byte packet per skb (raw sockets have no GSO), and nearly all of the tunnel's CPU is the kernel's IPv4 path per packet inside sendmmsg. The bottleneck row is the question a user asks: does the tunnel keep up with the WAN link.\n\n")
	fmt.Fprintf(&w, "<details><summary>samples</summary>\n\n")
	for k := range numKinds {
		for i, s := range samples[k] {
			fmt.Fprintf(&w, "- %s #%d: %s\n", k, i+1, s)
		}
	}
	for role, c := range b.tunnels {
		if c.stats != "" {
			fmt.Fprintf(&w, "- tunnel %s Stats: `%s`\n", role, c.stats)
		}
	}
	fmt.Fprintf(&w, "\n</details>\n")
	return w.String()
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "kernel ?"
	}
	return "kernel " + strings.TrimSpace(string(b))
}
