package lab_test

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/internal/leakcheck"
	"gateway/internal/testenv"
)

// pidOf reads the pid file that Start and Respawn keep for name, 0 if none.
func pidOf(l *lab.Lab, name string) int {
	b, err := os.ReadFile(filepath.Join(l.Dir, "pids", name))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func logFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "respawn.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestRespawnRestartsAndStops(t *testing.T) {
	leakcheck.Check(t)
	l := lab.Bare(t.TempDir())
	out := logFile(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Respawn(ctx, lab.Gateway, "sleeper", []string{"sleep", "100"}, lab.Respawn{Delay: 10 * time.Millisecond}, out)
	}()
	waitPID := func(not int) int {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if pid := pidOf(l, "sleeper"); pid != 0 && pid != not && processAlive(pid) {
				return pid
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new sleeper (not %d) within 5 s", not)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	first := waitPID(0)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := waitPID(first)
	b, _ := os.ReadFile(filepath.Join(l.Dir, "procs", "sleeper.json"))
	if !strings.Contains(string(b), `"restarts": 1`) {
		t.Errorf("record of the second run: %s; want restarts 1", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Respawn after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Respawn still runs 10 s after its context ended")
	}
	if processAlive(second) {
		t.Errorf("child %d alive after Respawn returned", second)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "pids", "sleeper")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after Respawn returned: %v", err)
	}
	log, _ := os.ReadFile(out.Name())
	for _, want := range []string{"started pid " + strconv.Itoa(first), "signal: killed", "restarting in 10ms (crash 1, at most 5 in a row)", "started pid " + strconv.Itoa(second) + " (restarts: 1)", "stopped pid " + strconv.Itoa(second)} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestRespawnGivesUp(t *testing.T) {
	tests := []struct {
		name     string
		policy   lab.Respawn
		args     []string
		runs     int  // starts before it gives up or is cancelled
		givesUp  bool // else cancelled after runs starts
		wantInLo string
	}{
		{"crash loop", lab.Respawn{Delay: time.Millisecond, Retry: 2}, []string{"sh", "-c", "exit 3"}, 3, true, "3 crashes in a row, each within 1h0m0s: giving up"},
		{"runs past the threshold reset the count", lab.Respawn{Delay: time.Millisecond, Threshold: 20 * time.Millisecond, Retry: 1}, []string{"sleep", "0.05"}, 4, false, "restarting in 1ms (crash 0, at most 1 in a row)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			l := lab.Bare(t.TempDir())
			out := logFile(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- l.Respawn(ctx, lab.Gateway, "prog", tt.args, tt.policy, out) }()
			var err error
			deadline := time.After(10 * time.Second)
		wait:
			for {
				select {
				case err = <-done:
					break wait
				case <-deadline:
					t.Fatal("Respawn runs after 10 s")
				case <-time.After(5 * time.Millisecond):
					log, _ := os.ReadFile(out.Name())
					if !tt.givesUp && strings.Count(string(log), "started pid") >= tt.runs {
						cancel()
					}
				}
			}
			log, _ := os.ReadFile(out.Name())
			if tt.givesUp != (err != nil) {
				t.Errorf("Respawn: %v; want giving up %v", err, tt.givesUp)
			}
			if n := strings.Count(string(log), "started pid"); tt.givesUp && n != tt.runs {
				t.Errorf("%d starts, want %d:\n%s", n, tt.runs, log)
			}
			if !strings.Contains(string(log), tt.wantInLo) {
				t.Errorf("log lacks %q:\n%s", tt.wantInLo, log)
			}
		})
	}
}

func TestReadLease(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		log  string
		want *lab.Lease
	}{
		{"none", "", nil},
		{"udhcpc bound", "event=deconfig time=1 iface=eth0 addr= mask=\n" +
			"event=bound time=1000 iface=eth0 addr=192.168.1.10 mask=24 router=192.168.1.1 dns=192.168.1.1 domain= lease=43200 mtu= routes= hostname=\n",
			&lab.Lease{Event: "bound", Addr: netip.MustParsePrefix("192.168.1.10/24"), Router: netip.MustParseAddr("192.168.1.1"),
				Time: time.Unix(1000, 0), Expires: time.Unix(1000+43200, 0)}},
		{"dhclient renew, dotted mask", "event=BOUND time=5 addr=10.0.0.9 mask=255.255.0.0 router= lease=60\nevent=RENEW time=35 addr=10.0.0.9 mask=255.255.0.0 router= lease=60\n",
			&lab.Lease{Event: "RENEW", Addr: netip.MustParsePrefix("10.0.0.9/16"), Time: time.Unix(35, 0), Expires: time.Unix(95, 0)}},
		{"released", "event=bound time=5 addr=10.0.0.9 mask=8 lease=60\nevent=deconfig time=6 addr= mask=\n", nil},
		{"bad line ignored", "event=bound time=5 addr=10.0.0.9 mask=8 lease=60\nevent=bound time=x addr=nonsense\n", nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strconv.Itoa(i))
			if err := os.WriteFile(p, []byte(tt.log), 0o644); err != nil {
				t.Fatal(err)
			}
			got, ok := lab.ReadLease(p)
			var gotp *lab.Lease
			if ok {
				gotp = &got
			}
			if diff := cmp.Diff(tt.want, gotp, netipComparers); diff != "" {
				t.Errorf("lease (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPing6(t *testing.T) {
	l := labtest.New(t)
	testenv.Tool(t, "busybox", "busybox")
	for _, tt := range []struct{ from, to string }{
		{lab.Public, lab.WANAddr6.Addr().String()},
		{lab.Gateway, lab.PublicAddrs6[1].Addr().String()},
		{lab.Relay, lab.PublicAddrs6[0].Addr().String()},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := l.Command(ctx, tt.from, "busybox", "ping", "-6", "-c", "1", "-W", "2", tt.to).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s: ping -6 %s: %v\n%s", tt.from, tt.to, err, out)
		}
	}
}
