package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (getconf CLK_TCK; 100 on every Linux architecture we run on).
const clockTicks = 100

// buildServe compiles dhcpserve into dir and returns its path.
func buildServe(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "dhcpserve")
	out, err := exec.Command(goBin, "build", "-o", bin, "gateway/bench/dhcp/dhcpserve").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build dhcpserve (run the benchmark from inside the module): %w: %s", err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// spawner starts processes from one OS thread that stays locked for as
// long as they may run. The servers get PR_SET_PDEATHSIG, which fires when
// the thread that forked them ends; Go ends a thread when a goroutine
// locked to it exits (inNetns does that), so forking from an arbitrary
// thread could kill a server mid-run.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for r := range s.reqs {
			r.errc <- r.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd, errc}
	return <-errc
}

// close ends the spawner; call it after every process it started ended.
func (s *spawner) close() { close(s.reqs) }

// serverProc is one server process, started in nsServer.
type serverProc struct {
	kind   string
	pid    int
	dir    string // this run's directory: state, config, log
	state  string // ours: the state dir; dnsmasq: the lease file
	log    string // the process's standard output and error
	exited chan struct{}
	err    error // of Wait, once exited is closed

	stopOnce sync.Once
	stopErr  error
}

// startServer starts kind in nsServer with a fresh state in dir.
func startServer(sp *spawner, kind, serveBin, dir string, probe bool) (*serverProc, error) {
	p := &serverProc{kind: kind, dir: dir, log: filepath.Join(dir, kind+".log"), exited: make(chan struct{})}
	var args []string
	switch kind {
	case serverOurs:
		p.state = filepath.Join(dir, "state")
		args = []string{serveBin,
			"-iface", ifServer, "-addr", serverPrefix,
			"-pool-start", poolStart, "-pool-end", poolEnd,
			"-state", p.state, "-probe=" + strconv.FormatBool(probe), "-lease", "12h"}
	case serverDnsmasq:
		p.state = filepath.Join(dir, "leases")
		conf := filepath.Join(dir, "dnsmasq.conf")
		if err := os.WriteFile(conf, []byte(dnsmasqConf(dir, p.state, probe)), 0o644); err != nil {
			return nil, err
		}
		args = []string{"dnsmasq", "-k", "--port=0", "--conf-file=" + conf}
	default:
		return nil, fmt.Errorf("unknown server %q", kind)
	}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	// ip netns exec enters the namespace and execs the server: the PID we
	// get is the server's.
	cmd := exec.Command("ip", append([]string{"netns", "exec", nsServer}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a terminal's Ctrl-C reaches only the benchmark,
	// which then stops the server by PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := sp.start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// dnsmasqConf is the configuration of the dnsmasq under test: DHCP only,
// authoritative, the same pool and lease time as ours, a lease file of its
// own (fsynced on every change, which is how dnsmasq keeps leases durable).
// quiet-dhcp turns off its per-packet log lines (ours logs none either),
// so that logging costs neither server anything.
func dnsmasqConf(dir, leases string, probe bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "interface=%s\nbind-interfaces\n", ifServer)
	fmt.Fprintf(&b, "dhcp-range=%s,%s,12h\n", poolStart, poolEnd)
	fmt.Fprintf(&b, "dhcp-lease-max=20000\ndhcp-authoritative\n")
	fmt.Fprintf(&b, "dhcp-leasefile=%s\n", leases)
	fmt.Fprintf(&b, "pid-file=%s\n", filepath.Join(dir, "dnsmasq.pid"))
	fmt.Fprintf(&b, "log-facility=%s\nquiet-dhcp\n", filepath.Join(dir, "dnsmasq-syslog.log"))
	if !probe {
		b.WriteString("no-ping\n")
	}
	return b.String()
}

func (p *serverProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// checkIdentity makes sure the PID is the server itself, not ip(8).
func (p *serverProc) checkIdentity() error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.pid))
	if err != nil {
		return fmt.Errorf("%s: %w", p.kind, err)
	}
	comm := strings.TrimSpace(string(b))
	want := map[string]string{serverOurs: "dhcpserve", serverDnsmasq: "dnsmasq"}[p.kind]
	if comm != want {
		return fmt.Errorf("%s: PID %d is %q, not %q", p.kind, p.pid, comm, want)
	}
	return nil
}

// stop sends SIGTERM, waits up to 10 s, then SIGKILLs. It reports an
// exit that was not clean.
func (p *serverProc) stop() error {
	p.stopOnce.Do(func() {
		if p.running() {
			syscall.Kill(p.pid, syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				syscall.Kill(p.pid, syscall.SIGKILL)
				<-p.exited
				p.stopErr = fmt.Errorf("%s did not stop within 10s of SIGTERM; killed", p.kind)
				return
			}
		}
		if p.err != nil {
			p.stopErr = fmt.Errorf("%s exited: %w\n%s", p.kind, p.err, p.logTail())
		}
	})
	return p.stopErr
}

// logTail is the end of the server's output, for error messages.
func (p *serverProc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// ourCounters reads the counters dhcpserve writes when it stops.
func (p *serverProc) ourCounters() map[string]uint64 {
	f, err := os.Open(p.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var st struct {
		Counters map[string]uint64 `json:"counters"`
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "stats "); ok {
			json.Unmarshal([]byte(rest), &st)
		}
	}
	return st.Counters
}

func procUsage(pid int) (usage, error) {
	var u usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return u, fmt.Errorf("/proc/%d/status: odd VmRSS line %q", pid, line)
			}
			if u.rssKiB, err = strconv.ParseInt(f[0], 10, 64); err != nil {
				return u, err
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name may hold spaces and parentheses: fields count from
	// the last ')'. utime and stime are fields 14 and 15 of proc(5).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return u, errors.New("odd /proc/PID/stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return u, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, err
	}
	u.cpu = time.Duration(ut+st) * time.Second / clockTicks
	return u, nil
}
