package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gateway/bench/internal/benchmain"
	"golang.org/x/sys/unix"
)

// plan is one row of the report: a server, a load, conflict detection.
type plan struct {
	server string
	run    string
	probe  bool
	burst  bool
	spec   loadSpec
}

func (o options) plans() []plan {
	load := func(n int, seed uint64) loadSpec {
		return loadSpec{clients: n, window: o.window, retransmit: 2 * time.Second, tries: 3, limit: o.limit, seed: seed}
	}
	burst := loadSpec{clients: o.burst, window: o.burst, retransmit: 2 * time.Second, limit: o.burstLimit, seed: 3}
	var out []plan
	// Interleaved, so that slow drift of the machine hits both servers.
	for _, r := range []struct {
		run   string
		spec  loadSpec
		burst bool
	}{
		{loadLabel(o.small), load(o.small, 1), false},
		{loadLabel(o.large), load(o.large, 2), false},
		{burstLabel(o.burst), burst, true},
	} {
		for _, s := range []string{serverOurs, serverDnsmasq} {
			out = append(out, plan{server: s, run: r.run, probe: r.burst, burst: r.burst, spec: r.spec})
		}
	}
	return out
}

// run builds the lab, measures every plan and returns the report. The
// servers are stopped and the lab removed before it returns, whatever
// happened; after an error the report holds the rows measured so far.
func run(ctx context.Context, o options) (report string, err error) {
	if os.Geteuid() != 0 {
		return "", errors.New("needs root: it builds network namespaces")
	}
	for _, p := range []string{"ip", "dnsmasq"} {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("needs %s: %w", p, err)
		}
	}
	start := time.Now()
	res := &results{opt: o, started: start, kernel: kernelRelease(), cpus: runtime.NumCPU()}
	res.loadAvg[0] = benchmain.LoadAverage()
	tmp, err := os.MkdirTemp("", "bdhcp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	res.stateFS = fsName(tmp)

	logf("building dhcpserve")
	bin, err := buildServe(tmp)
	if err != nil {
		return "", err
	}
	logf("building namespaces %s and %s", nsServer, nsClient)
	l, err := labUp()
	if err != nil {
		return "", err
	}
	defer func() {
		logf("removing namespaces")
		err = errors.Join(err, l.down())
	}()
	sp := newSpawner()
	defer sp.close() // after every server stopped: measure stops its own

	for _, pl := range o.plans() {
		m, merr := measure(ctx, sp, bin, tmp, pl)
		if m != nil {
			res.rows = append(res.rows, m)
		}
		if merr != nil {
			err = fmt.Errorf("%s, %s: %w", pl.server, pl.run, merr)
			break
		}
	}
	res.elapsed = time.Since(start)
	res.loadAvg[1] = benchmain.LoadAverage()
	return res.markdown(), err
}

// measure runs one plan against a fresh server process.
func measure(ctx context.Context, sp *spawner, bin, tmp string, pl plan) (m *measurement, err error) {
	dir, err := os.MkdirTemp(tmp, pl.server+"-")
	if err != nil {
		return nil, err
	}
	logf("%s, %s: starting the server", pl.server, pl.run)
	p, err := startServer(sp, pl.server, bin, dir, pl.probe)
	if err != nil {
		return nil, err
	}
	defer func() {
		err = errors.Join(err, p.stop())
		if m != nil && pl.server == serverOurs {
			m.counter = p.ourCounters()
		}
	}()
	ready, err := waitReady(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := p.checkIdentity(); err != nil {
		return nil, err
	}
	before, err := procUsage(p.pid)
	if err != nil {
		return nil, err
	}
	logf("%s, %s: answered a DORA after %v; %d clients", pl.server, pl.run, ready.Round(time.Millisecond), pl.spec.clients)
	srv0, err1 := readUDPStats(nsServer)
	cli0, err2 := readUDPStats(nsClient)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	t0, gen0 := time.Now(), selfCPU()
	r, err := runLoad(ctx, pl.spec)
	if err != nil {
		return nil, err
	}
	genCPU := selfCPU() - gen0
	srv1, err1 := readUDPStats(nsServer)
	cli1, err2 := readUDPStats(nsClient)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if !p.running() {
		return nil, fmt.Errorf("the server died during the run:\n%s", p.logTail())
	}
	after, err := procUsage(p.pid)
	if err != nil {
		return nil, err
	}
	logf("%s, %s: %d/%d leased in %v (%.0f DORA/s), %d failed, %d retries",
		pl.server, pl.run, r.acked, r.clients, time.Since(t0).Round(time.Millisecond), r.rate(), r.failed, r.retries)
	m = &measurement{server: pl.server, run: pl.run, burst: pl.burst, limit: pl.spec.limit, res: r, before: before, after: after,
		srvRcvbufDrops: srv1.rcvbufErrors - srv0.rcvbufErrors, cliRcvbufDrops: cli1.rcvbufErrors - cli0.rcvbufErrors, genCPU: genCPU}
	if m.srvRcvbufDrops > 0 {
		logf("%s, %s: the server's socket overflowed: %d requests dropped by the kernel", pl.server, pl.run, m.srvRcvbufDrops)
	}
	// Every ACK promised a durable lease: check the store before the
	// server stops (and could flush what it had not yet written).
	var stored map[string]netip.Addr
	var lines int
	var file string
	if pl.server == serverOurs {
		file = "leases.jsonl"
		stored, lines, err = readJournal(filepath.Join(p.state, file))
	} else {
		file = "lease file"
		stored, lines, err = readDnsmasqLeases(p.state)
	}
	if err != nil {
		return m, err
	}
	missing := 0
	for mac, a := range r.leased {
		if stored[mac] != a {
			missing++
		}
	}
	m.durable = missing == 0 && lines >= r.acked
	m.stored = fmt.Sprintf("%s lines in %s; all %s ACKed in it", thousands(lines), file, thousands(r.acked))
	if missing > 0 {
		m.stored = fmt.Sprintf("%s lines in %s; **%d of %d ACKed leases missing**", thousands(lines), file, missing, r.acked)
	}
	return m, nil
}

// waitReady repeats a one-client DORA until the server answers.
func waitReady(ctx context.Context, p *serverProc) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		if !p.running() {
			return 0, fmt.Errorf("%s exited at start:\n%s", p.kind, p.logTail())
		}
		// dnsmasq's ping check takes 3 s before an OFFER: allow 8.
		// Retransmit after 1 s: sooner would hit ours while it probes the
		// address (a "probe-pending" drop in its counters).
		r, err := runLoad(ctx, loadSpec{clients: 1, window: 1, retransmit: time.Second, limit: 8 * time.Second, seed: 0xfeed})
		if err != nil {
			return 0, err
		}
		if r.acked == 1 {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("%s gave no lease within 30s:\n%s", p.kind, p.logTail())
}

// readJournal replays ours's lease journal into MAC → address.
func readJournal(path string) (map[string]netip.Addr, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	byMAC := map[string]netip.Addr{}
	owner := map[netip.Addr]string{}
	lines := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines++
		var rec struct {
			Lease *struct {
				Addr netip.Addr `json:"addr"`
				MAC  string     `json:"mac"`
			} `json:"lease"`
			Release *netip.Addr `json:"release"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, 0, fmt.Errorf("%s:%d: %w", path, lines, err)
		}
		switch {
		case rec.Lease != nil:
			byMAC[rec.Lease.MAC] = rec.Lease.Addr
			owner[rec.Lease.Addr] = rec.Lease.MAC
		case rec.Release != nil:
			delete(byMAC, owner[*rec.Release])
		}
	}
	return byMAC, lines, sc.Err()
}

// readDnsmasqLeases reads dnsmasq's lease file: "expiry mac ip name id".
func readDnsmasqLeases(path string) (map[string]netip.Addr, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	byMAC := map[string]netip.Addr{}
	lines := 0
	for line := range strings.Lines(string(b)) {
		lines++
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if a, err := netip.ParseAddr(f[2]); err == nil {
			byMAC[f[1]] = a
		}
	}
	return byMAC, lines, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// selfCPU is this process's user and system time.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// fsName names the file system under dir: fsync is free on tmpfs, and the
// report must say so.
func fsName(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return dir
	}
	name := fmt.Sprintf("fs 0x%x", st.Type)
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		name = "ext4"
	case unix.TMPFS_MAGIC:
		name = "tmpfs (fsync costs nothing there)"
	case unix.XFS_SUPER_MAGIC:
		name = "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		name = "btrfs"
	}
	return fmt.Sprintf("%s (%s)", dir, name)
}
