package ra

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gateway/internal/leakcheck"
	"gateway/internal/testenv"
)

// netns is a network namespace made for one test and removed after it.
type netns string

func newNetns(t *testing.T, role string) netns {
	t.Helper()
	name := fmt.Sprintf("ra-%s-%d-%d", role, os.Getpid(), time.Now().UnixNano()%1e6)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	n := netns(name)
	n.exec(t, "ip", "link", "set", "lo", "up")
	// Before any interface exists: no DAD (speed), as gateway/lab does.
	n.sysctl(t, "net/ipv6/conf/all/accept_dad", "0")
	n.sysctl(t, "net/ipv6/conf/default/accept_dad", "0")
	return n
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (n netns) exec(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", string(n)}, args...)...)
}

func (n netns) sysctl(t *testing.T, key, value string) {
	t.Helper()
	n.exec(t, "sh", "-c", fmt.Sprintf("echo %s > /proc/sys/%s", value, key))
}

// listenIn opens the service's socket on a thread inside ns: the socket
// stays in ns whichever goroutine reads it.
func listenIn(ns netns, iface string) (conn, error) {
	type res struct {
		c   conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open(filepath.Join("/run/netns", string(ns)))
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{nil, err}
			return
		}
		c, err := listen(iface)
		ch <- res{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// waitFor polls fn until it returns "" or the deadline passes, then fails
// with fn's last complaint.
func waitFor(t *testing.T, d time.Duration, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := fn()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSLAACAndRdisc6 runs the Service on one end of a veth and checks, on
// the other, a plain Linux host: the kernel's SLAAC address in the
// prefix, rdisc6's view of the RA, and renumbering (the old prefix
// deprecated, in rdisc6 and in the host's address).
func TestSLAACAndRdisc6(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "ip", "iproute2")
	testenv.Tool(t, "rdisc6", "ndisc6")
	leakcheck.Check(t)

	r, h := newNetns(t, "r"), newNetns(t, "h")
	r.sysctl(t, "net/ipv6/conf/all/forwarding", "1")
	run(t, "ip", "-n", string(r), "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", string(h))
	r.exec(t, "ip", "link", "set", "lan0", "up")
	h.exec(t, "ip", "link", "set", "eth0", "up")

	dns := netip.MustParseAddr("2001:db8::53")
	pa, pb := netip.MustParsePrefix("2001:db8:1:a::/64"), netip.MustParsePrefix("2001:db8:1:b::/64")
	s, err := newService(Config{
		Iface: "lan0", StateDir: t.TempDir(), RDNSS: []netip.Addr{dns}, DNSSL: []string{"home.arpa"},
		Logger: testLogger(t),
	}, func() (conn, error) { return listenIn(r, "lan0") })
	if err != nil {
		t.Fatal(err)
	}
	s.Set(Advert{Prefixes: []Prefix{{Prefix: pa}}, Default: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)

	addrs := func() string { return h.exec(t, "ip", "-6", "addr", "show", "dev", "eth0") }
	inPrefix := func(p netip.Prefix) *regexp.Regexp {
		return regexp.MustCompile(`inet6 (` + strings.TrimSuffix(p.Addr().String(), ":") + `[0-9a-f:]+)/64 scope global([^\n]*)\n\s+valid_lft (\S+) preferred_lft (\S+)`)
	}
	waitFor(t, 10*time.Second, func() string {
		if out := addrs(); !inPrefix(pa).MatchString(out) {
			return "the host has no SLAAC address in " + pa.String() + ":\n" + out
		}
		return ""
	})
	if m := inPrefix(pa).FindStringSubmatch(addrs()); strings.Contains(m[2], "deprecated") || m[4] == "0sec" {
		t.Errorf("new address deprecated: %q", m[0])
	}
	if out := h.exec(t, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via fe80::") {
		t.Errorf("no default route from the RA:\n%s", out)
	}

	out := h.exec(t, "rdisc6", "-1", "eth0")
	if strings.Contains(out, "Timed out") {
		t.Errorf("rdisc6 had to ask again:\n%s", out)
	}
	for _, want := range []string{
		`Prefix\s+: ` + regexp.QuoteMeta(pa.String()),
		`Recursive DNS server\s+: ` + regexp.QuoteMeta(dns.String()),
		`DNS search list\s+: home\.arpa`,
		`Router lifetime\s+:\s+1800 `,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("rdisc6 does not show %q:\n%s", want, out)
		}
	}
	if st := s.Stats(); st.RSAnswered == 0 {
		t.Errorf("rdisc6's solicitation not counted as answered: %+v", st)
	}

	// Renumber: B in, A deprecated.
	s.Set(Advert{Prefixes: []Prefix{{Prefix: pb}}, Default: true})
	waitFor(t, 10*time.Second, func() string {
		out := addrs()
		if !inPrefix(pb).MatchString(out) {
			return "no address in the new prefix:\n" + out
		}
		m := inPrefix(pa).FindStringSubmatch(out)
		if m == nil {
			return "the old address is gone, want it deprecated:\n" + out
		}
		if !strings.Contains(m[2], "deprecated") || m[4] != "0sec" {
			return "the old address is not deprecated:\n" + out
		}
		return ""
	})
	out = h.exec(t, "rdisc6", "-1", "eth0")
	old := regexp.MustCompile(`Prefix\s+: ` + regexp.QuoteMeta(pa.String()) + `\n(?:\s+.*\n)*?\s+Pref\. time\s+:\s+0 \(0x00000000\)`)
	if !old.MatchString(out) {
		t.Errorf("rdisc6 does not show %v with preferred time 0:\n%s", pa, out)
	}
	if !regexp.MustCompile(`Prefix\s+: ` + regexp.QuoteMeta(pb.String())).MatchString(out) {
		t.Errorf("rdisc6 does not show the new prefix:\n%s", out)
	}

	// Shutdown: the final RA's router lifetime 0 takes the host's
	// default route away.
	stop()
	waitFor(t, 5*time.Second, func() string {
		if out := h.exec(t, "ip", "-6", "route", "show", "default"); strings.Contains(out, "default") {
			return "the host keeps its default route after the final RA:\n" + out
		}
		return ""
	})
}

// TestRenumberAfterKill: a Service advertising A dies without a final RA
// (its socket fails, as with kill -9); a new one on the same state
// directory advertises B, and the host deprecates its address in A
// because the new Service remembered A.
func TestRenumberAfterKill(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "ip", "iproute2")
	leakcheck.Check(t)

	r, h := newNetns(t, "r"), newNetns(t, "h")
	r.sysctl(t, "net/ipv6/conf/all/forwarding", "1")
	run(t, "ip", "-n", string(r), "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", string(h))
	r.exec(t, "ip", "link", "set", "lan0", "up")
	h.exec(t, "ip", "link", "set", "eth0", "up")
	state := t.TempDir()
	pa, pb := netip.MustParsePrefix("2001:db8:2:a::/64"), netip.MustParsePrefix("2001:db8:2:b::/64")

	start := func(p netip.Prefix) (c chan conn, done chan error, cancel context.CancelFunc) {
		c, done = make(chan conn, 1), make(chan error, 1)
		s, err := newService(Config{Iface: "lan0", StateDir: state, Logger: testLogger(t)}, func() (conn, error) {
			cn, err := listenIn(r, "lan0")
			if err == nil {
				c <- cn
			}
			return cn, err
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Set(Advert{Prefixes: []Prefix{{Prefix: p}}, Default: true})
		ctx, cancel := context.WithCancel(context.Background())
		go func() { done <- s.Run(ctx) }()
		return c, done, cancel
	}
	addrs := func() string { return h.exec(t, "ip", "-6", "addr", "show", "dev", "eth0") }
	addrRE := func(p netip.Prefix) *regexp.Regexp {
		return regexp.MustCompile(`inet6 ` + strings.TrimSuffix(p.Addr().String(), ":") + `[0-9a-f:]+/64 scope global([^\n]*)\n\s+valid_lft (\S+) preferred_lft (\S+)`)
	}

	conns, done, cancel := start(pa)
	waitFor(t, 10*time.Second, func() string {
		if !addrRE(pa).MatchString(addrs()) {
			return "no address in " + pa.String() + ":\n" + addrs()
		}
		return ""
	})
	// "kill -9": the socket goes, Run fails, no final RA.
	(<-conns).Close()
	if err := <-done; err == nil {
		t.Fatal("Run returned nil after its socket was closed under it")
	}
	cancel()
	if m := addrRE(pa).FindStringSubmatch(addrs()); m == nil || strings.Contains(m[1], "deprecated") {
		t.Fatalf("the address in A should still be preferred after the kill:\n%s", addrs())
	}

	_, done, cancel = start(pb)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, 10*time.Second, func() string {
		out := addrs()
		if !addrRE(pb).MatchString(out) {
			return "no address in the new prefix:\n" + out
		}
		if m := addrRE(pa).FindStringSubmatch(out); m == nil || !strings.Contains(m[1], "deprecated") || m[3] != "0sec" {
			return "the address in the old prefix is not deprecated after the restart:\n" + out
		}
		return ""
	})
}
