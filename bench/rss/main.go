// Command rss measures the daemon's memory: idle with every service on
// (NAT44 and DHCP), then with 10,000 port mappings, in a lab of its own.
//
//	go run ./bench/rss [-mappings 10000]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
)

func main() {
	n := flag.Int("mappings", 10000, "mappings to add for the loaded figure")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "rss:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	tmp, err := os.MkdirTemp("", "bench-rss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "gateway")
	if out, err := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/gateway").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Options{Name: fmt.Sprintf("r%05d", os.Getpid()%100000), Dir: filepath.Join(tmp, "lab")})
	if err != nil {
		return err
	}
	defer l.Down()
	cfg := filepath.Join(l.Dir, "gateway.conf")
	text := strings.Replace(labgw.Config(l, ""), "option log_level 'debug'", "option log_level 'info'", 1)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return err
	}
	if err := labgw.Start(ctx, l, bin, cfg); err != nil {
		return err
	}
	pid, err := daemonPID(l)
	if err != nil {
		return err
	}
	time.Sleep(3 * time.Second) // let start-up garbage go
	idle, err := rss(pid)
	if err != nil {
		return err
	}
	// Mappings through the API, in batches of 1,000, as a busy LAN would
	// build them up.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", labgw.Socket(l))
	}}}
	for i := 0; i < n; i += 1000 {
		var batch []map[string]any
		for j := i; j < min(i+1000, n); j++ {
			batch = append(batch, map[string]any{"proto": "udp", "external_port": 20000 + j,
				"internal": netip.AddrPortFrom(lab.LAN1Addr.Addr(), uint16(20000+j)).String(), "description": "bench"})
		}
		body, _ := json.Marshal(batch)
		resp, err := client.Post("http://gateway/api/v1/mappings", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("add mappings: %s", resp.Status)
		}
	}
	time.Sleep(3 * time.Second)
	loaded, err := rss(pid)
	if err != nil {
		return err
	}
	hwm, _ := status(pid, "VmHWM")
	fmt.Printf("| daemon (amd64), the lab's config: NAT44, DHCP, UPnP, NAT-PMP and PCP on | RSS |\n|---|---:|\n")
	fmt.Printf("| idle | %.1f MiB |\n| with %d mappings | %.1f MiB |\n| peak (VmHWM) | %.1f MiB |\n", idle, n, loaded, hwm)
	fmt.Printf("\ngoal: under 16 MiB idle: %v\n", idle < 16)
	return nil
}

func daemonPID(l *lab.Lab) (int, error) {
	for _, h := range l.Status().Hosts {
		for _, p := range h.Processes {
			if p.Name == labgw.Daemon && p.Alive {
				return p.PID, nil
			}
		}
	}
	return 0, fmt.Errorf("the daemon is not running")
}

func rss(pid int) (float64, error) { return status(pid, "VmRSS") }

// status reads a "kB" field of /proc/PID/status, in MiB.
func status(pid int, field string) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.Atoi(strings.Fields(v)[0])
			return float64(kb) / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
