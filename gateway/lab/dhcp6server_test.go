package lab_test

import (
	"testing"
	"time"

	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/internal/testenv"
)

// TestPDServerDown checks that dhcpd -6 accepts the config StartPDServer
// writes (it is still running a second later) and that Down ends it.
func TestPDServerDown(t *testing.T) {
	labtest.Skip(t)
	testenv.Tool(t, "dhcpd", "isc-dhcp-server")
	l := labtest.New(t)
	pid, err := l.StartPDServer(lab.PDServerOptions{Preferred: 10 * time.Second, Valid: 20 * time.Second, T1: 5 * time.Second, T2: 8 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if p, ok := l.Process(lab.PDServer); !ok || !p.Alive || p.PID != pid {
		t.Fatalf("dhcpd not running a second after the start: %+v (see %s)", p, p.Log)
	}
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Errorf("dhcpd (pid %d) survives Down", pid)
	}
}
