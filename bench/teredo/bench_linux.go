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
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gateway/bench/internal/benchmain"
	"gateway/sixto4/teredo"
)

const (
	server   = "203.0.113.10" // miredo-server, and .11: two consecutive addresses
	relayWAN = "203.0.113.66"
	lanHost  = "fd00:77::2"     // the gateway site's LAN host (ULA, NAT66 to the Teredo address)
	native   = "2001:db8:2::2"  // the native IPv6 host behind the relay
	lanULA   = "fd00:77::/64"   // what the router masquerades
	iperfP   = "5201"           // iperf3 on the peer's Teredo address
	pings    = 40               // per latency sample
	pingGap  = "0.05"           // seconds between pings
	readyFor = 20 * time.Second // a daemon's time to qualify or come up
	warmFor  = 20 * time.Second // the first ping's time to open the path
	waitStep = 50 * time.Millisecond
)

// runChild is the child: our client (in the router) or relay, "ready"
// on stdout once it is open, its Stats as JSON on stdout when SIGTERM
// ends it.
func runChild(ctx context.Context, o childOptions) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var runner interface {
		Run(context.Context) error
		Close() error
	}
	var stats func() any
	switch o.mode {
	case "client":
		s, err := netip.ParseAddr(o.server)
		if err != nil {
			return fmt.Errorf("-server: %w", err)
		}
		c, err := teredo.New(teredo.Config{Name: "teredo", Servers: []netip.Addr{s}, Logger: log})
		if err != nil {
			return err
		}
		runner, stats = c, func() any { s := c.Stats(); return s }
	case "relay":
		b, err := netip.ParseAddrPort(o.bind)
		if err != nil {
			return fmt.Errorf("-bind: %w", err)
		}
		r, err := teredo.NewRelay(teredo.RelayConfig{Name: "teredo-relay", Bind: b, Logger: log})
		if err != nil {
			return err
		}
		runner, stats = r, func() any { s := r.Stats(); return s }
	default:
		return fmt.Errorf("-child %q: want client or relay", o.mode)
	}
	if o.prof != "" {
		f, err := os.Create(o.prof)
		if err != nil {
			runner.Close()
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fmt.Println("ready")
	err := runner.Run(ctx)
	json.NewEncoder(os.Stdout).Encode(stats())
	return errors.Join(err, runner.Close())
}

// side is one Teredo implementation in one place.
type side int

const (
	oursClient side = iota
	miredoClient
	oursRelay
	miredoRelay
	numSides
)

var sideNames = [numSides]string{"ours-client", "miredo-client", "ours-relay", "miredo-relay"}

func (s side) String() string { return sideNames[s] }
func (s side) relay() bool    { return s == oursRelay || s == miredoRelay }
func (s side) ours() bool     { return s == oursClient || s == oursRelay }

// src is the namespace role that sends to the peer: the LAN host or the
// native host.
func (s side) src() string {
	if s.relay() {
		return "native"
	}
	return "lan"
}

type bench struct {
	opt   options
	id    string
	dir   string
	ns    map[string]string // role → namespace name
	procs []*proc           // every process still to stop
	peer  string            // the peer's Teredo address
	stats map[side][]string // our children's Stats, per run
	log   io.Writer
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr bytes.Buffer
	done   chan struct{}
}

func run(ctx context.Context, opt options) (string, error) {
	if opt.child.mode != "" {
		return "", runChild(ctx, opt.child)
	}
	if os.Geteuid() != 0 {
		return "", errors.New("needs root (network namespaces, TUN devices)")
	}
	for _, t := range []string{"iperf3", "miredo", "miredo-server", "nft", "busybox"} {
		if _, err := exec.LookPath(t); err != nil {
			return "", fmt.Errorf("needs %s (Debian packages iperf3, miredo, miredo-server, nftables, busybox for ping)", t)
		}
	}
	var sides []side
	for _, name := range strings.Split(opt.sides, ",") {
		i := slices.Index(sideNames[:], strings.TrimSpace(name))
		if i < 0 {
			return "", fmt.Errorf("-sides: unknown side %q (want %s)", name, strings.Join(sideNames[:], ","))
		}
		sides = append(sides, side(i))
	}
	dir, err := os.MkdirTemp("", "bench-teredo-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	b := &bench{opt: opt, id: benchmain.LabName("")[:6], dir: dir, ns: map[string]string{}, stats: map[side][]string{}, log: os.Stderr}
	defer b.teardown()
	load := benchmain.LoadAverage()
	if err := b.setup(ctx); err != nil {
		return "", err
	}
	samples := map[side][]sample{}
	for round := range opt.repeat {
		order := slices.Clone(sides)
		for range round {
			order = append(order[1:], order[0])
		}
		for _, s := range order {
			smp, err := b.measure(ctx, s)
			if err != nil {
				return b.report(samples, sides, load), fmt.Errorf("%s, round %d: %w", s, round+1, err)
			}
			fmt.Fprintf(b.log, "round %d %s: %s\n", round+1, s, smp)
			samples[s] = append(samples[s], smp)
		}
	}
	return b.report(samples, sides, load), nil
}

func (b *bench) sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (b *bench) in(role string, args ...string) error {
	return b.sh(append([]string{"ip", "netns", "exec", b.ns[role]}, args...)...)
}

func (b *bench) ip(role, args string) error {
	return b.sh(append([]string{"ip", "-n", b.ns[role]}, strings.Fields(args)...)...)
}

// setup builds the namespaces:
//
//	peer (192.168.78.2, Miredo client) ─ pnat (198.51.100.2) ─┐
//	lan (fd00:77::2) ─ gw (100.64.0.2, Teredo client) ─ cgn (192.0.2.2) ─ inet (miredo-server 203.0.113.10/.11)
//	native (2001:db8:2::2) ─ relay (203.0.113.66, 2001:db8:1::2) ─┘
//
// pnat and cgn masquerade (restricted NATs, unsolicited input dropped
// before conntrack confirms it: ANCHORS.md); gw NAT66es the LAN's ULA to
// its Teredo address; the relay routes 2001::/32 into its Teredo device.
func (b *bench) setup(ctx context.Context) error {
	for _, role := range []string{"inet", "pnat", "peer", "cgn", "gw", "lan", "relay", "native"} {
		name := "btr-" + b.id + "-" + role
		if err := b.sh("ip", "netns", "add", name); err != nil {
			return err
		}
		b.ns[role] = name
		if err := b.ip(role, "link set lo up"); err != nil {
			return err
		}
	}
	link := func(n, a, aAddr, m, bName, bAddr string) []func() error {
		return []func() error{
			func() error {
				return b.sh("ip", "-n", b.ns[n], "link", "add", a, "type", "veth", "peer", "name", bName, "netns", b.ns[m])
			},
			func() error { return b.ip(n, "addr add "+aAddr+" dev "+a) },
			func() error { return b.ip(m, "addr add "+bAddr+" dev "+bName) },
			func() error { return b.ip(n, "link set "+a+" up") },
			func() error { return b.ip(m, "link set "+bName+" up") },
		}
	}
	var steps []func() error
	add := func(fs ...func() error) { steps = append(steps, fs...) }
	ipf := func(role, args string) func() error { return func() error { return b.ip(role, args) } }
	sysctl := func(role, kv string) func() error { return func() error { return b.in(role, "sysctl", "-qw", kv) } }
	add(ipf("inet", "addr add "+server+"/32 dev lo"), ipf("inet", "addr add 203.0.113.11/32 dev lo"))
	add(sysctl("inet", "net.ipv4.ip_forward=1"))
	add(link("inet", "pnat", "198.51.100.1/24", "pnat", "wan", "198.51.100.2/24")...)
	add(link("pnat", "lan", "192.168.78.1/24", "peer", "lan", "192.168.78.2/24")...)
	add(link("inet", "cgn", "192.0.2.1/25", "cgn", "wan", "192.0.2.2/25")...)
	add(link("cgn", "lan", "100.64.0.1/24", "gw", "wan", "100.64.0.2/24")...)
	add(link("gw", "lan", "fd00:77::1/64 nodad", "lan", "lan", lanHost+"/64 nodad")...)
	add(link("inet", "relay", "203.0.113.65/26", "relay", "wan", relayWAN+"/26")...)
	add(link("relay", "lan", "2001:db8:2::1/64 nodad", "native", "lan", native+"/64 nodad")...)
	add(ipf("inet", "-6 addr add 2001:db8:1::1/64 dev relay nodad"), ipf("relay", "-6 addr add 2001:db8:1::2/64 dev wan nodad"),
		ipf("inet", "-6 route add 2001:db8:2::/64 via 2001:db8:1::2"))
	add(ipf("pnat", "route add default via 198.51.100.1"), ipf("peer", "route add default via 192.168.78.1"),
		ipf("cgn", "route add default via 192.0.2.1"), ipf("gw", "route add default via 100.64.0.1"),
		ipf("relay", "route add default via 203.0.113.65"),
		ipf("lan", "-6 route add default via fd00:77::1"), ipf("native", "-6 route add default via 2001:db8:2::1"))
	for _, n := range []string{"pnat", "cgn"} {
		add(sysctl(n, "net.ipv4.ip_forward=1"), func() error {
			return b.in(n, "nft", "add table ip benchnat\n"+
				"add chain ip benchnat post { type nat hook postrouting priority srcnat; }\n"+
				"add rule ip benchnat post oifname wan masquerade\n"+
				"add chain ip benchnat in { type filter hook input priority filter; }\n"+
				"add rule ip benchnat in iifname wan ct state new drop")
		})
	}
	add(sysctl("gw", "net.ipv6.conf.all.forwarding=1"), sysctl("relay", "net.ipv6.conf.all.forwarding=1"), func() error {
		return b.in("gw", "nft", "add table ip6 benchnat66\n"+
			"add chain ip6 benchnat66 post { type nat hook postrouting priority srcnat; }\n"+
			"add rule ip6 benchnat66 post ip6 saddr "+lanULA+" oifname teredo masquerade")
	})
	for _, f := range steps {
		if err := f(); err != nil {
			return err
		}
	}
	if _, err := b.daemon("miredo-server", "inet", "ServerBindAddress "+server+"\n"); err != nil {
		return err
	}
	// Miredo's server may still be binding when the client starts: the
	// client retries on its own.
	if _, err := b.daemon("miredo", "peer", "RelayType client\nServerAddress "+server+"\nInterfaceName teredo\n"); err != nil {
		return err
	}
	a, err := b.waitTeredoAddr(ctx, "peer")
	if err != nil {
		return fmt.Errorf("the peer's Miredo client: %w", err)
	}
	b.peer = a
	fmt.Fprintf(b.log, "peer's Teredo address %s\n", a)
	// One iperf3 server for the whole run, on the peer's Teredo address.
	_, err = b.start("iperf3 server", "peer", "iperf3", "-s", "-B", b.peer, "-p", iperfP)
	return err
}

// start runs args in role's namespace until stop or teardown.
func (b *bench) start(name, role string, args ...string) (*proc, error) {
	p := &proc{name: name, cmd: exec.Command("ip", append([]string{"netns", "exec", b.ns[role]}, args...)...), done: make(chan struct{})}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.stdout = bufio.NewReader(out)
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	b.procs = append(b.procs, p)
	return p, nil
}

// daemon starts a Miredo program in role with conf.
func (b *bench) daemon(prog, role, conf string) (*proc, error) {
	path := filepath.Join(b.dir, role+"-"+prog)
	if err := os.WriteFile(path+".conf", []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return b.start(prog+" in "+role, role, prog, "-f", "-c", path+".conf", "-p", path+".pid")
}

// stop ends p with SIGTERM (SIGKILL after 5 s) and returns what it
// printed on stdout after that.
func (b *bench) stop(p *proc) string {
	b.procs = slices.DeleteFunc(b.procs, func(q *proc) bool { return q == p })
	if p.cmd.ProcessState != nil {
		return ""
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	rest := make(chan []byte, 1)
	go func() { r, _ := io.ReadAll(p.stdout); rest <- r }()
	go func() { p.cmd.Wait(); close(p.done) }()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	select {
	case r := <-rest:
		return strings.TrimSpace(string(r))
	case <-time.After(time.Second):
		return ""
	}
}

func (b *bench) teardown() {
	for len(b.procs) > 0 {
		b.stop(b.procs[len(b.procs)-1])
	}
	for _, n := range b.ns {
		exec.Command("ip", "netns", "del", n).Run()
	}
}

var teredoAddrRE = regexp.MustCompile(`inet6 (2001:0?:[0-9a-f:]+)/`)

// waitTeredoAddr waits for role's "teredo" device to have its Teredo
// address.
func (b *bench) waitTeredoAddr(ctx context.Context, role string) (string, error) {
	deadline := time.Now().Add(readyFor)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		out, _ := exec.Command("ip", "-n", b.ns[role], "-6", "addr", "show", "dev", "teredo").Output()
		if m := teredoAddrRE.FindSubmatch(out); m != nil {
			return string(m[1]), nil
		}
		time.Sleep(waitStep)
	}
	return "", fmt.Errorf("no Teredo address after %v", readyFor)
}

// waitLink waits for dev to be up in role.
func (b *bench) waitLink(ctx context.Context, role, dev string) error {
	deadline := time.Now().Add(readyFor)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		out, _ := exec.Command("ip", "-n", b.ns[role], "link", "show", "dev", dev).Output()
		if bytes.Contains(out, []byte(",UP")) || bytes.Contains(out, []byte("<UP")) {
			return nil
		}
		time.Sleep(waitStep)
	}
	return fmt.Errorf("%s not up after %v", dev, readyFor)
}

// startSide starts s's Teredo process and waits until it can carry.
func (b *bench) startSide(ctx context.Context, s side) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var p *proc
	child := func(role string, args ...string) error {
		if b.opt.prof != "" {
			args = append(args, "-child-cpuprofile", fmt.Sprintf("%s.%s", b.opt.prof, s))
		}
		p, err = b.start(s.String(), role, append([]string{exe}, args...)...)
		if err != nil {
			return err
		}
		line, err := p.stdout.ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("said %q", line)
		}
		if err != nil {
			return fmt.Errorf("%w: %s", err, bytes.TrimSpace(p.stderr.Bytes()))
		}
		return nil
	}
	switch s {
	case oursClient:
		err = child("gw", "-child", "client", "-server", server)
	case miredoClient:
		p, err = b.daemon("miredo", "gw", "RelayType client\nServerAddress "+server+"\nInterfaceName teredo\n")
	case oursRelay:
		err = child("relay", "-child", "relay", "-bind", relayWAN+":3544")
	case miredoRelay:
		p, err = b.daemon("miredo", "relay", "RelayType cone\nInterfaceName teredo-relay\nBindAddress "+relayWAN+"\nBindPort 3544\n")
	}
	if err != nil {
		return p, err
	}
	if s.relay() {
		if err := b.waitLink(ctx, "relay", "teredo-relay"); err != nil {
			return p, err
		}
		// Miredo's relay leaves routing to the administrator; ours has
		// added the same route.
		if err := b.ip("relay", "-6 route replace 2001::/32 dev teredo-relay"); err != nil {
			return p, err
		}
	} else if _, err := b.waitTeredoAddr(ctx, "gw"); err != nil {
		return p, err
	}
	// The first packets open the path (bubbles, the relay's echo test).
	deadline := time.Now().Add(warmFor)
	for {
		err := exec.Command("ip", "netns", "exec", b.ns[s.src()], "busybox", "ping", "-6", "-c", "1", "-W", "1", b.peer).Run()
		if err == nil {
			return p, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return p, fmt.Errorf("no ping from %s to the peer %s after %v", s.src(), b.peer, warmFor)
		}
	}
}

type sample struct {
	out, in  float64 // bit/s to the peer, from the peer
	bytes    float64 // carried in both TCP runs
	cpu      float64 // seconds of CPU of the Teredo process(es) over both TCP runs
	user     float64 // the part of cpu in user space
	pingP50  float64 // ms
	pingLost int
}

func (s sample) String() string {
	return fmt.Sprintf("TCP out %.0f Mbit/s, in %.0f Mbit/s, ping p50 %.3f ms (%d lost), CPU %.2f s (user %.2f s) for %.0f MB (%.2f s/GB)",
		s.out/1e6, s.in/1e6, s.pingP50, s.pingLost, s.cpu, s.user, s.bytes/1e6, s.cpuPerGB())
}

func (s sample) cpuPerGB() float64 {
	if s.bytes == 0 {
		return 0
	}
	return s.cpu / (s.bytes / 1e9)
}

func (b *bench) measure(ctx context.Context, s side) (sample, error) {
	var smp sample
	p, err := b.startSide(ctx, s)
	defer func() {
		if p != nil {
			if st := b.stop(p); s.ours() && st != "" {
				b.stats[s] = append(b.stats[s], st)
			}
		}
	}()
	if err != nil {
		if p != nil {
			err = fmt.Errorf("%w; %s said: %s", err, p.name, bytes.TrimSpace(p.stderr.Bytes()))
		}
		return smp, err
	}
	if smp.pingP50, smp.pingLost, err = b.ping(ctx, s.src()); err != nil {
		return smp, err
	}
	pid := p.cmd.Process.Pid
	cpu0, user0 := treeCPU(pid)
	for _, reverse := range []bool{false, true} {
		r, err := b.iperf(ctx, s.src(), reverse)
		if err != nil {
			return smp, err
		}
		sr := r.End.SumReceived
		if reverse {
			smp.in = sr.BitsPerSecond
		} else {
			smp.out = sr.BitsPerSecond
		}
		smp.bytes += sr.Bytes
	}
	cpu1, user1 := treeCPU(pid)
	smp.cpu, smp.user = cpu1-cpu0, user1-user0
	return smp, nil
}

var rttRE = regexp.MustCompile(`time=([0-9.]+) ms`)

// ping sends pings from role to the peer and returns the median RTT in
// ms and how many got no answer.
func (b *bench) ping(ctx context.Context, role string) (float64, int, error) {
	out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", b.ns[role], "busybox", "ping", "-6", "-c", strconv.Itoa(pings), "-i", pingGap, "-W", "1", b.peer).Output()
	var rtts []float64
	for _, m := range rttRE.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		rtts = append(rtts, v)
	}
	if len(rtts) == 0 {
		return 0, pings, fmt.Errorf("ping from %s to %s: no answer", role, b.peer)
	}
	return med(rtts), pings - len(rtts), nil
}

type iperfResult struct {
	End struct {
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperf runs an iperf3 client in role against the peer's server: the
// LAN or native host sends, or with reverse receives.
func (b *bench) iperf(ctx context.Context, role string, reverse bool) (iperfResult, error) {
	var r iperfResult
	secs := max(1, int(b.opt.duration.Round(time.Second).Seconds()))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+20*time.Second)
	defer cancel()
	args := []string{"netns", "exec", b.ns[role], "iperf3", "-c", b.peer, "-p", iperfP, "-t", strconv.Itoa(secs), "-J"}
	if reverse {
		args = append(args, "-R")
	}
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		return r, fmt.Errorf("iperf3 %s: %v (output: %v)", strings.Join(args, " "), err, jerr)
	}
	if r.Error != "" || err != nil {
		return r, fmt.Errorf("iperf3 %s: %v: %s", strings.Join(args, " "), err, r.Error)
	}
	return r, nil
}

// treeCPU is the CPU time (user and system, and user alone), in
// seconds, of pid and every process descended from it: Miredo forks its
// tunnel worker.
func treeCPU(pid int) (total, user float64) {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	cpu, usr := map[int]float64{}, map[int]float64{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): state
		// is field 3, ppid 4, utime 14, stime 15.
		f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		parent[p], cpu[p], usr[p] = pp, (u+s)/100, u/100 // USER_HZ is 100 on Linux
	}
	for p, c := range cpu {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				total += c
				user += usr[p]
				break
			}
		}
	}
	return total, user
}

func med(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func medOf(s []sample, f func(sample) float64) float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	return med(v)
}

func (b *bench) report(samples map[side][]sample, sides []side, load string) string {
	var w strings.Builder
	fmt.Fprintf(&w, "# bench/teredo: our Teredo client and relay vs Miredo 1.2.6\n\n")
	fmt.Fprintf(&w, "%s, %d round(s), %v per TCP run, %d pings per latency sample, load average %s at the start (now %s), %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), b.opt.repeat, b.opt.duration, pings, load, benchmain.LoadAverage(), kernel())
	fmt.Fprintf(&w, "The peer: Miredo's client behind a masquerade NAT, Teredo address %s. Client case: a LAN host (ULA, NAT66 to the router's Teredo address) behind the router running the Teredo client, itself behind a carrier's masquerade NAT. Relay case: a native IPv6 host behind the relay. Medians; CPU is the Teredo process's (and its children's) utime+stime over both TCP runs, per GB carried.\n\n", b.peer)
	fmt.Fprintf(&w, "| side | TCP to peer (Mbit/s) | TCP from peer (Mbit/s) | ping p50 (ms) | CPU s/GB |\n|---|---:|---:|---:|---:|\n")
	type fig struct{ out, in, ping, cpu float64 }
	figs := map[side]fig{}
	for _, s := range sides {
		ss := samples[s]
		if len(ss) == 0 {
			continue
		}
		f := fig{medOf(ss, func(x sample) float64 { return x.out }), medOf(ss, func(x sample) float64 { return x.in }),
			medOf(ss, func(x sample) float64 { return x.pingP50 }), medOf(ss, sample.cpuPerGB)}
		figs[s] = f
		fmt.Fprintf(&w, "| %s | %.0f | %.0f | %.3f | %.2f |\n", s, f.out/1e6, f.in/1e6, f.ping, f.cpu)
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	var goals []string
	for _, pair := range [][2]side{{oursClient, miredoClient}, {oursRelay, miredoRelay}} {
		o, ok1 := figs[pair[0]]
		m, ok2 := figs[pair[1]]
		if !ok1 || !ok2 {
			continue
		}
		fmt.Fprintf(&w, "| **%s / %s** | %s | %s | %s | %s |\n", pair[0], pair[1], ratio(o.out, m.out), ratio(o.in, m.in), ratio(o.ping, m.ping), ratio(o.cpu, m.cpu))
		tp := min(o.out/m.out, o.in/m.in)
		verdict := "met"
		if tp < 1.5 || o.cpu > m.cpu/2 {
			verdict = "NOT met"
		}
		goals = append(goals, fmt.Sprintf("- %s: throughput ≥ 1.5× Miredo's both ways (%.2f, %.2f) at ≤ 0.5× its CPU per GB (%.2f): %s",
			pair[0], o.out/m.out, o.in/m.in, o.cpu/m.cpu, verdict))
	}
	if len(goals) > 0 {
		fmt.Fprintf(&w, "\nGoal (issue 12):\n\n%s\n", strings.Join(goals, "\n"))
	}
	fmt.Fprintf(&w, "\n<details><summary>samples</summary>\n\n")
	for _, s := range sides {
		for i, x := range samples[s] {
			fmt.Fprintf(&w, "- %s #%d: %s\n", s, i+1, x)
		}
		for i, st := range b.stats[s] {
			fmt.Fprintf(&w, "- %s run %d Stats: `%s`\n", s, i+1, st)
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
