package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gateway/bench/internal/benchmain"
	"gateway/dhcp"
	"gateway/nat44"
	"gateway/nat44/nat44test"
)

// The syscalls strace records: writes, syncs and renames. Only those on a
// state directory's files (strace -y names each descriptor's file) count.
const traced = "write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,sync_file_range,syncfs,rename,renameat,renameat2"

// traceCmd runs prog under strace (following threads and children,
// timestamps, descriptor paths, no data) inside namespace ns.
func traceCmd(out, ns string, prog string, args ...string) *exec.Cmd {
	a := []string{"-f", "-qq", "-ttt", "-y", "-s", "0", "--seccomp-bpf", "-e", "trace=" + traced, "-e", "signal=none", "-o", out,
		"ip", "netns", "exec", ns, prog}
	return exec.Command("strace", append(a, args...)...)
}

// traceePID is the process strace started (ip netns exec execs in place).
func traceePID(strace *exec.Cmd) (int, error) {
	pid := strace.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return 0, err
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, errors.New("strace started no process")
}

type side struct {
	name  string
	dir   string // state directory
	trace string
	cmd   *exec.Cmd
	pid   int           // the traced daemon
	done  chan struct{} // closed when strace has ended
	link  link
}

// kill ends the daemon with SIGKILL (a power cut, as far as the state
// directory knows) and waits for strace to write its trace.
func (s *side) kill() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	if s.pid > 0 {
		syscall.Kill(s.pid, syscall.SIGKILL)
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill() // strace itself, by PID
		<-s.done
		return fmt.Errorf("%s: strace did not end after its tracee was killed", s.name)
	}
}

func (s *side) start() error {
	s.done = make(chan struct{})
	if err := s.cmd.Start(); err != nil {
		return err
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	pid, err := traceePID(s.cmd)
	s.pid = pid
	return err
}

func run(ctx context.Context, o options) (report string, err error) {
	if os.Geteuid() != 0 {
		return "", errors.New("needs root: it builds network namespaces")
	}
	for _, p := range []string{"ip", "strace", "dnsmasq"} {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("needs %s (Debian: iproute2, strace, dnsmasq-base): %w", p, err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	started := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}
	parent := o.parent
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "bench-flash-")
	if err != nil {
		return "", err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()

	name := benchmain.LabName("bfl")
	ls := &labs{}
	defer func() { err = errors.Join(err, ls.down()) }()
	ourLink, err := ls.add(name, "o", "10.78.0.1/16")
	if err != nil {
		return "", err
	}
	dmLink, err := ls.add(name, "d", "10.79.0.1/16")
	if err != nil {
		return "", err
	}
	logf("namespaces %s-*; state directories in %s", name, dir)

	ours := &side{name: "ours", dir: filepath.Join(dir, "ours"), trace: filepath.Join(dir, "ours.trace"), link: ourLink}
	dm := &side{name: "dnsmasq", dir: filepath.Join(dir, "dnsmasq"), trace: filepath.Join(dir, "dnsmasq.trace"), link: dmLink}
	for _, s := range []*side{ours, dm} {
		if err := os.Mkdir(s.dir, 0o755); err != nil {
			return "", err
		}
	}
	defer func() {
		for _, s := range []*side{ours, dm} {
			err = errors.Join(err, s.kill())
		}
	}()

	headroom := o.sim(30 * time.Minute)
	ours.cmd = traceCmd(ours.trace, ourLink.srvNS, exe, workerArg,
		"-state", ours.dir, "-iface", ifServer, "-addr", ourLink.addr,
		"-pool-start", "10.78.1.0", "-pool-end", "10.78.1.250",
		"-torrent", "10.78.0.50", "-console", "10.78.0.60",
		"-lease", o.sim(o.lease).String(), "-headroom", headroom.String(),
		"-upnp-every", o.sim(o.upnp).String(), "-upnp-lifetime", o.sim(o.upnpLife).String(),
		"-upnp-mappings", strconv.Itoa(o.upnpMaps),
		"-pcp-every", o.sim(o.pcp).String(), "-pcp-lifetime", o.sim(o.pcpLife).String(),
		"-min-lifetime", o.sim(2*time.Minute).String())
	ours.cmd.Stderr = os.Stderr
	stdout, err := ours.cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := ours.start(); err != nil {
		return "", fmt.Errorf("start our worker: %w", err)
	}
	lines := bufio.NewScanner(stdout)
	ready := make(chan bool, 1)
	var grantsMu sync.Mutex
	grants := map[string]grant{} // by proto/port: the last grant
	var grantCount int
	go func() {
		first := true
		for lines.Scan() {
			if first {
				ready <- lines.Text() == "ready"
				first = false
				continue
			}
			var g grant
			if json.Unmarshal(lines.Bytes(), &g) == nil {
				grantsMu.Lock()
				grants[fmt.Sprintf("%s/%d", g.Proto, g.Port)] = g
				grantCount++
				grantsMu.Unlock()
			}
		}
		if first {
			ready <- false
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if !ok {
			return "", errors.New("our worker did not start")
		}
	case <-time.After(30 * time.Second):
		return "", errors.New("our worker not ready after 30 s")
	}

	// dnsmasq's shortest lease is 2 minutes; the clients renew on the
	// simulated schedule whatever the lease says.
	dmLease := max(o.sim(o.lease), 2*time.Minute)
	conf := filepath.Join(dir, "dnsmasq.conf")
	err = os.WriteFile(conf, fmt.Appendf(nil, `port=0
interface=%s
bind-interfaces
dhcp-range=10.79.1.0,10.79.1.250,%ds
dhcp-authoritative
dhcp-leasefile=%s
dhcp-lease-max=1000
no-ping
quiet-dhcp
log-facility=-
pid-file=
`, ifServer, int(dmLease.Seconds()), filepath.Join(dm.dir, "dnsmasq.leases")), 0o644)
	if err != nil {
		return "", err
	}
	dm.cmd = traceCmd(dm.trace, dmLink.srvNS, "dnsmasq", "-k", "--conf-file="+conf)
	dm.cmd.Stderr = io.Discard // its log (log-facility=-)
	if err := dm.start(); err != nil {
		return "", fmt.Errorf("start dnsmasq: %w", err)
	}

	realLen := time.Duration(o.hours * float64(time.Hour) / o.scale)
	logf("load for %.1f simulated hours = %v real (scale %.0f): %d DHCP clients (lease %v, renew every %v), %d UPnP mappings re-added every %v (lifetime %v), one PCP mapping renewed every %v (lifetime %v)",
		o.hours, realLen.Round(time.Second), o.scale, o.clients, o.lease, o.lease/2, o.upnpMaps, o.upnp, o.upnpLife, o.pcp, o.pcpLife)
	t0 := time.Now()
	lctx, cancel := context.WithTimeout(ctx, realLen)
	defer cancel()
	var cs [2]*clients
	var wg sync.WaitGroup
	for i, s := range []*side{ours, dm} {
		conn, err := clientSocket(s.link)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		cliNS := s.link.cliNS
		cs[i] = newClients(conn, func(a netip.Addr) error {
			return ip("-n", cliNS, "addr", "replace", netip.PrefixFrom(a, 16).String(), "dev", ifClient)
		})
		go cs[i].read()
		wg.Go(func() {
			cs[i].drive(lctx, o.clients, 50*time.Millisecond, o.sim(o.lease/2), min(time.Second, o.sim(o.lease/8)))
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	elapsed := time.Since(t0)
	logf("load done; killing both daemons with SIGKILL")
	for _, s := range []*side{ours, dm} {
		if err := s.kill(); err != nil {
			return "", err
		}
	}

	res := &result{opt: o, started: started, elapsed: elapsed, headroom: headroom, dmLease: dmLease}
	for i, s := range []*side{ours, dm} {
		st, acks := cs[i].snapshot()
		sr := sideResult{name: s.name, clients: st, acks: acks}
		if sr.hours, sr.files, err = parseTrace(s.trace, s.dir, t0, o.scale); err != nil {
			return "", fmt.Errorf("%s trace: %w", s.name, err)
		}
		res.sides = append(res.sides, &sr)
	}
	grantsMu.Lock()
	res.grants, res.grantCount = grants, grantCount
	grantsMu.Unlock()
	res.verifyOurs(ours.dir)
	res.verifyDnsmasq(filepath.Join(dm.dir, "dnsmasq.leases"))
	return res.markdown(), nil
}

// hourStat is what reached one state directory in one simulated hour.
type hourStat struct {
	syncs, writes, renames int
	bytes                  int64
}

// parseTrace adds up, per simulated hour since t0 and per file, the
// syncs, writes and renames on files under dir.
func parseTrace(path, dir string, t0 time.Time, scale float64) (hours []hourStat, files map[string]*hourStat, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	files = map[string]*hourStat{}
	type pending struct {
		call, file string
	}
	open := map[string]pending{} // by PID: a call strace split in two lines
	start := float64(t0.UnixNano()) / 1e9
	inDir := func(p string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 2)
		if len(fields) < 2 {
			continue
		}
		pid := fields[0]
		rest := strings.TrimLeft(fields[1], " ")
		ts, rest, ok := strings.Cut(rest, " ")
		if !ok {
			continue
		}
		t, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			continue
		}
		var call, file string
		if after, ok := strings.CutPrefix(rest, "<... "); ok {
			call, _, _ = strings.Cut(after, " ")
			p := open[pid]
			delete(open, pid)
			file = p.file
		} else {
			c, args, ok := strings.Cut(rest, "(")
			if !ok {
				continue
			}
			call = c
			if strings.HasPrefix(call, "rename") {
				if strings.Contains(args, dir+"/") {
					file = dir
				}
			} else if i := strings.Index(args, "<"); i >= 0 {
				if j := strings.Index(args[i:], ">"); j > 0 {
					file = args[i+1 : i+j]
				}
			}
			if strings.HasSuffix(rest, "<unfinished ...>") {
				open[pid] = pending{call, file}
				continue
			}
		}
		if file == "" || !inDir(file) {
			continue
		}
		eq := strings.LastIndex(rest, " = ")
		if eq < 0 {
			continue
		}
		retText, _, _ := strings.Cut(rest[eq+3:], " ")
		ret, err := strconv.ParseInt(retText, 10, 64)
		if err != nil || ret < 0 {
			continue
		}
		h := max(int((t-start)*scale/3600), 0)
		for len(hours) <= h {
			hours = append(hours, hourStat{})
		}
		name := filepath.Base(file)
		if file == dir {
			name = "(directory)"
		}
		fs := files[name]
		if fs == nil {
			fs = &hourStat{}
			files[name] = fs
		}
		for _, s := range []*hourStat{&hours[h], fs} {
			switch {
			case call == "fsync" || call == "fdatasync" || call == "sync_file_range" || call == "syncfs":
				s.syncs++
			case strings.HasPrefix(call, "rename"):
				s.renames++
			default:
				s.writes++
				s.bytes += ret
			}
		}
	}
	return hours, files, sc.Err()
}

// verifyOurs reads our state directory back as the daemon would after a
// restart and checks it against what the replies promised.
func (r *result) verifyOurs(dir string) {
	s := r.sides[0]
	srv, err := dhcp.New(dhcp.Config{Interface: ifServer, StateDir: dir,
		CoreConfig: dhcp.CoreConfig{ServerAddr: netip.MustParsePrefix("10.78.0.1/16"),
			PoolStart: netip.MustParseAddr("10.78.1.0"), PoolEnd: netip.MustParseAddr("10.78.1.250")}})
	if err != nil {
		s.verifyErr = err.Error()
	} else {
		onDisk := map[string]dhcp.Lease{}
		for _, l := range srv.Leases() {
			onDisk[l.MAC] = l
		}
		s.check(func(mac string, a ack) (bool, bool) {
			l, ok := onDisk[mac]
			return ok && l.Addr == a.addr, ok && !l.Expires.Before(a.expires.Add(-2*time.Second))
		})
	}
	n, err := nat44.New(nat44.Config{WAN: "wan", LANs: []string{"lan"}, StateDir: dir,
		Datapath: nat44test.NewFakeDatapath(), Conntrack: nat44test.NewFakeConntrack()})
	if err != nil {
		r.mapErr = err.Error()
		return
	}
	ms := map[string]nat44.Mapping{}
	for _, m := range n.List() {
		ms[m.Key().String()] = m
	}
	for k, g := range r.grants {
		m, ok := ms[k]
		if !ok || m.Internal.String() != g.Internal {
			r.mapLost++
			continue
		}
		if !m.Permanent() && m.Expires.Before(g.Expires.Add(-time.Second)) {
			r.mapShort++
		}
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.Run(cctx) // closes the journal
}

// verifyDnsmasq reads dnsmasq's lease file ("expiry mac ip name id").
func (r *result) verifyDnsmasq(path string) {
	s := r.sides[1]
	b, err := os.ReadFile(path)
	if err != nil {
		s.verifyErr = err.Error()
		return
	}
	type entry struct {
		addr    netip.Addr
		expires time.Time
	}
	onDisk := map[string]entry{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		exp, _ := strconv.ParseInt(f[0], 10, 64)
		a, _ := netip.ParseAddr(f[2])
		onDisk[f[1]] = entry{a, time.Unix(exp, 0)}
	}
	s.check(func(mac string, a ack) (bool, bool) {
		e, ok := onDisk[mac]
		return ok && e.addr == a.addr, ok && !e.expires.Before(a.expires.Add(-2*time.Second))
	})
}

// check counts, over every client's last ACK, bindings missing from disk
// and bindings whose expiry on disk is earlier than the ACK promised.
func (s *sideResult) check(found func(mac string, a ack) (binding, expiry bool)) {
	for mac, a := range s.acks {
		b, e := found(mac, a)
		switch {
		case !b:
			s.lost++
		case !e:
			s.short++
		}
	}
	s.verified = true
}
