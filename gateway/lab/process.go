package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Folders inside Dir.
const (
	pidsDir  = "pids"  // NAME holds the pid of process NAME
	procsDir = "procs" // NAME.json holds the rest of what Start knows
	logsDir  = "logs"  // default log files
)

// stopWait is how long Stop and Down wait for a signalled process to exit.
const stopWait = 5 * time.Second

// commandScript runs inside the new mount and UTS namespaces, as
// `sh -c commandScript sh HOSTDIR HOST LABDIR RUNREL PROGRAM ARGS...`.
// It gives the host its own /run, /etc/resolv.conf, /var/lib/dhcp,
// /var/lib/dhcpcd and hostname, so that DHCP clients in different hosts do
// not overwrite each other's files, nor the machine's. If the lab folder
// is under /run (RUNREL is its path below /run), it stays visible at its
// usual path. The program and its arguments are never parsed by the shell.
const commandScript = `set -e
d=$1 h=$2 lab=$3 rel=$4
shift 4
if [ -n "$rel" ]; then
	mkdir -p "$d/run/$rel"
	mount --bind "$lab" "$d/run/$rel"
	mount --rbind "$d/run" /run
else
	mount --bind "$d/run" /run
fi
rc=$(readlink -m /etc/resolv.conf)
case $rc in
/run/*) mkdir -p "${rc%/*}"; [ -e "$rc" ] || : >"$rc" ;;
esac
if [ -e "$rc" ]; then mount --bind "$d/resolv.conf" "$rc"; fi
for v in dhcp dhcpcd; do
	if [ -d "/var/lib/$v" ]; then mount --bind "$d/$v" "/var/lib/$v"; fi
done
printf '%s\n' "$h" >/proc/sys/kernel/hostname
exec "$@"
`

// Command returns a command that runs program name with args inside host:
// in its network namespace, with hostname HOST, and with its own
// /etc/resolv.conf (Dir/HOST/resolv.conf), /run (Dir/HOST/run),
// /var/lib/dhcp and /var/lib/dhcpcd (Dir/HOST/dhcp, Dir/HOST/dhcpcd) in a
// private mount namespace. The process that runs is `ip`, which becomes the
// program through exec, so Process.Pid is the program's pid. An unknown
// host makes the command's Start fail.
func (l *Lab) Command(ctx context.Context, host, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, "ip", l.commandArgs(host, name, args)...)
	if err := checkHost(host); err != nil {
		c.Err = err
	}
	return c
}

func (l *Lab) commandArgs(host, name string, args []string) []string {
	dir := l.Dir
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	rel := ""
	if r, ok := strings.CutPrefix(dir, "/run/"); ok {
		rel = r
	}
	argv := []string{"netns", "exec", l.NS(host),
		"unshare", "--mount", "--uts", "--propagation", "private",
		"sh", "-c", commandScript, "sh", filepath.Join(dir, host), host, dir, rel, name}
	return append(argv, args...)
}

func checkHost(host string) error {
	if _, ok := newTopology().host(host); !ok {
		return fmt.Errorf("lab: no host %q", host)
	}
	return nil
}

// procInfo is what Start records about a process, in Dir/procs/NAME.json.
type procInfo struct {
	Name string   `json:"name"`
	Host string   `json:"host"`
	PID  int      `json:"pid"`
	Args []string `json:"args"`
	Log  string   `json:"log"`
	// Start is the process's start time in clock ticks after boot
	// (proc(5), /proc/PID/stat field 22); it tells the process from a
	// later one with the same pid. 0 if unknown.
	Start uint64 `json:"start"`
	// Restarts counts the restarts by Respawn before this process.
	Restarts int `json:"restarts,omitempty"`
}

func validProcName(name string) error {
	if len(name) < 1 || len(name) > 64 {
		return fmt.Errorf("lab: process name %q: want 1 to 64 characters", name)
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return fmt.Errorf("lab: process name %q: want only letters, digits, - and _", name)
		}
	}
	return nil
}

// Start starts a long-running process inside host, as Command would, and
// returns its pid. name identifies the process for Stop and Status and
// names its pid file, Dir/pids/NAME; args is the command line, program
// first. Standard output and error are appended to logFile ("" means
// Dir/logs/NAME.log). The process runs in a session of its own, so it
// outlives the caller; Stop or Down ends it. Starting a name that is still
// running is an error.
func (l *Lab) Start(host, name string, args []string, logFile string) (pid int, err error) {
	if err := validProcName(name); err != nil {
		return 0, err
	}
	if len(args) == 0 {
		return 0, fmt.Errorf("lab: start %s: no command", name)
	}
	if err := checkHost(host); err != nil {
		return 0, err
	}
	if _, err := os.Stat(filepath.Join(l.Dir, stateFile)); err != nil {
		return 0, fmt.Errorf("lab: start %s: lab %s is not up: %w", name, l.Name, err)
	}
	if p, err := l.readProc(name); err == nil && alive(p.PID, p.Start) {
		return 0, fmt.Errorf("lab: start %s: already running as pid %d", name, p.PID)
	}
	if logFile == "" {
		logFile = filepath.Join(l.Dir, logsDir, name+".log")
	}
	if logFile, err = filepath.Abs(logFile); err != nil {
		return 0, fmt.Errorf("lab: start %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return 0, fmt.Errorf("lab: start %s: %w", name, err)
	}
	for _, d := range []string{pidsDir, procsDir} {
		if err := os.MkdirAll(filepath.Join(l.Dir, d), 0o755); err != nil {
			return 0, fmt.Errorf("lab: start %s: %w", name, err)
		}
	}
	log, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("lab: start %s: %w", name, err)
	}
	defer log.Close() // the child has its own copy

	c := exec.Command("ip", l.commandArgs(host, args[0], args[1:])...)
	c.Stdout, c.Stderr = log, log
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("lab: start %s: %w", name, err)
	}
	p := procInfo{Name: name, Host: host, PID: c.Process.Pid, Args: slices.Clone(args), Log: logFile}
	// Not reaped before Wait, so its stat is there.
	p.Start, _ = startTime(p.PID)

	exited := make(chan struct{})
	l.mu.Lock()
	if l.exited == nil {
		l.exited = make(map[string]chan struct{})
	}
	l.exited[name] = exited
	l.mu.Unlock()
	go func() {
		c.Wait() // reaps it; its exit status goes to the log, if anywhere
		close(exited)
	}()

	if err := l.writeProc(p); err != nil {
		syscall.Kill(-p.PID, syscall.SIGKILL)
		return 0, err
	}
	return p.PID, nil
}

func (l *Lab) writeProc(p procInfo) error {
	b, err := json.MarshalIndent(p, "", "\t")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(l.Dir, procsDir, p.Name+".json"), append(b, '\n')); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(l.Dir, pidsDir, p.Name), []byte(strconv.Itoa(p.PID)+"\n"))
}

// readProc reads what Start recorded about process name. The pid file
// decides; the rest is best effort.
func (l *Lab) readProc(name string) (procInfo, error) {
	b, err := os.ReadFile(filepath.Join(l.Dir, pidsDir, name))
	if err != nil {
		return procInfo{}, fmt.Errorf("lab: process %s: %w", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return procInfo{}, fmt.Errorf("lab: process %s: bad pid file %q", name, b)
	}
	p := procInfo{Name: name, PID: pid}
	if b, err := os.ReadFile(filepath.Join(l.Dir, procsDir, name+".json")); err == nil {
		var info procInfo
		if json.Unmarshal(b, &info) == nil && info.PID == pid {
			p = info
			p.Name = name
		}
	}
	return p, nil
}

func (l *Lab) removeProc(name string) error {
	var errs []error
	for _, f := range []string{filepath.Join(pidsDir, name), filepath.Join(procsDir, name+".json")} {
		if err := os.Remove(filepath.Join(l.Dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("lab: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Process returns what Start (or Respawn) recorded about process name,
// and whether there is such a record.
func (l *Lab) Process(name string) (Process, bool) {
	if validProcName(name) != nil {
		return Process{}, false
	}
	p, err := l.readProc(name)
	if err != nil {
		return Process{}, false
	}
	return Process{Name: p.Name, Host: p.Host, PID: p.PID, Alive: alive(p.PID, p.Start),
		Args: p.Args, Log: p.Log, Restarts: p.Restarts}, true
}

// processes lists what Start recorded, by name.
func (l *Lab) processes() ([]Process, error) {
	entries, err := os.ReadDir(filepath.Join(l.Dir, pidsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	var procs []Process
	for _, e := range entries {
		if validProcName(e.Name()) != nil {
			continue // a temporary file
		}
		if p, ok := l.Process(e.Name()); ok {
			procs = append(procs, p)
		}
	}
	return procs, nil
}

// Stop sends sig to the process group of the process that Start started
// as name, waits up to 5 s for the process to exit, and removes its pid
// file. A process that has already exited is only forgotten.
func (l *Lab) Stop(name string, sig syscall.Signal) error {
	if err := validProcName(name); err != nil {
		return err
	}
	p, err := l.readProc(name)
	if err != nil {
		return err
	}
	t := target{pid: p.PID, start: p.Start, group: true}
	if alive(t.pid, t.start) {
		if err := t.signal(sig); err != nil {
			return fmt.Errorf("lab: stop %s: %w", name, err)
		}
		if left := waitGone([]target{t}, stopWait); len(left) > 0 {
			return fmt.Errorf("lab: stop %s: pid %d still runs %v after %v", name, p.PID, stopWait, sig)
		}
	}
	l.waitReaped(name)
	return l.removeProc(name)
}

// stopAll stops every process that Start recorded: SIGTERM, and SIGKILL
// for those still running 5 s later.
func (l *Lab) stopAll() error {
	procs, err := l.processes()
	if err != nil {
		return err
	}
	var ts []target
	for _, p := range procs {
		info, err := l.readProc(p.Name)
		if err == nil {
			ts = append(ts, target{pid: info.PID, start: info.Start, group: true})
		}
	}
	if err := terminate(ts); err != nil {
		return err
	}
	var errs []error
	for _, p := range procs {
		l.waitReaped(p.Name)
		errs = append(errs, l.removeProc(p.Name))
	}
	return errors.Join(errs...)
}

// killStrays ends the processes left in the namespaces ns, such as
// shells of `gateway lab exec`, so that the namespaces really go away.
// The calling process is spared: its threads may be in a namespace
// through Do.
func killStrays(ns []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ts []target
	var errs []error
	for _, n := range ns {
		out, err := output(ctx, "ip", "netns", "pids", n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range strings.Fields(string(out)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid == os.Getpid() {
				continue
			}
			start, _ := startTime(pid)
			ts = append(ts, target{pid: pid, start: start})
		}
	}
	errs = append(errs, terminate(ts))
	return errors.Join(errs...)
}

// target is a process to end.
type target struct {
	pid   int
	start uint64 // see procInfo.Start
	group bool   // signal its process group (pgid = pid: it called setsid)
}

func (t target) signal(sig syscall.Signal) error {
	if t.group {
		if err := syscall.Kill(-t.pid, sig); err == nil || !errors.Is(err, syscall.ESRCH) {
			return err
		}
	}
	err := syscall.Kill(t.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// terminate sends SIGTERM to the targets that are alive, waits up to 5 s,
// then sends SIGKILL to those left and waits up to 5 s more.
func terminate(ts []target) error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		var live []target
		for _, t := range ts {
			if alive(t.pid, t.start) {
				live = append(live, t)
			}
		}
		for _, t := range live {
			t.signal(sig) // if it fails, waitGone tells
		}
		ts = waitGone(live, stopWait)
		if len(ts) == 0 {
			return nil
		}
	}
	pids := make([]string, len(ts))
	for i, t := range ts {
		pids[i] = strconv.Itoa(t.pid)
	}
	return fmt.Errorf("lab: processes %s survive SIGKILL", strings.Join(pids, ", "))
}

// waitGone polls /proc until none of ts is alive or d has passed, and
// returns those still alive.
func waitGone(ts []target, d time.Duration) []target {
	deadline := time.Now().Add(d)
	for {
		ts = slices.DeleteFunc(ts, func(t target) bool { return !alive(t.pid, t.start) })
		if len(ts) == 0 || time.Now().After(deadline) {
			return ts
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReaped waits, briefly, until this Lab has reaped the process it
// started as name, if it did, so that no goroutine of Start outlives Stop.
func (l *Lab) waitReaped(name string) {
	l.mu.Lock()
	exited := l.exited[name]
	delete(l.exited, name)
	l.mu.Unlock()
	if exited == nil {
		return
	}
	t := time.NewTimer(stopWait)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
	}
}

// alive tells whether process pid runs and, if start is not 0, is the one
// that started at start. A zombie is not alive.
func alive(pid int, start uint64) bool {
	state, st, err := procStat(pid)
	if err != nil || state == 'Z' || state == 'X' {
		return false
	}
	return start == 0 || st == start
}

func startTime(pid int) (uint64, error) {
	_, st, err := procStat(pid)
	return st, err
}

// procStat reads the state and start time of a process from
// /proc/PID/stat (proc(5)).
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name, field 2, is in parentheses and may hold
	// anything; the fields after the last ')' start with field 3.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("lab: /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("lab: /proc/%d/stat: %d fields", pid, len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22
	if err != nil {
		return 0, 0, fmt.Errorf("lab: /proc/%d/stat: %w", pid, err)
	}
	return f[0][0], start, nil
}
