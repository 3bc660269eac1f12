//go:build linux && !nolab

package gateway_test

// The daemon's services are supervised: a DHCP service that cannot start
// is logged and retried while NAT keeps forwarding, a SIGHUP with a fixed
// DHCP section brings it up with the new config, a DHCP section the LAN
// refuses leaves the running one in place, and SIGTERM stops everything
// cleanly.

import (
	"bufio"
	"context"
	"fmt"
	"gateway/gateway/labgw"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/gateway"
	"gateway/gateway/client"
	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/internal/supervise"
	"gateway/internal/testenv"
)

// daemonName is the daemon's process name in the lab.
const daemonName = "gateway"

type supLab struct {
	t   *testing.T
	l   *lab.Lab
	cfg string
	log string
}

func (s *supLab) run(host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := s.l.Command(ctx, host, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

func (s *supLab) status() (gateway.Status, error) {
	var st gateway.Status
	err := client.New(labgw.Socket(s.l)).Do("GET", "/api/v1/status", nil, &st)
	return st, err
}

func service(st gateway.Status, name string) supervise.Status {
	for _, sv := range st.Services {
		if sv.Name == name {
			return sv
		}
	}
	return supervise.Status{}
}

// until retries f for d at most.
func (s *supLab) until(d time.Duration, what string, f func() error) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.log)
			s.t.Fatalf("%s: %v\ngateway log:\n%s", what, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *supLab) pid() int {
	for _, h := range s.l.Status().Hosts {
		for _, p := range h.Processes {
			if p.Name == daemonName && p.Alive {
				return p.PID
			}
		}
	}
	return 0
}

func (s *supLab) signal(sig syscall.Signal) {
	s.t.Helper()
	pid := s.pid()
	if pid == 0 {
		s.t.Fatal("the daemon is not running")
	}
	if err := syscall.Kill(pid, sig); err != nil {
		s.t.Fatal(err)
	}
}

func (s *supLab) writeConfig(extra string) {
	s.t.Helper()
	if err := os.WriteFile(s.cfg, []byte(labgw.BaseConfig(s.l, extra)), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func TestSupervisedDHCP(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "nft", "nftables")
	testenv.Tool(t, "udhcpc", "udhcpc")
	l := labtest.New(t)
	hook := l.DHCPHook()
	// lan1 serves the static forward by its usual address while the DHCP
	// service is down.
	if err := l.SetStaticIPv4(lab.LAN1); err != nil {
		t.Fatal(err)
	}
	s := &supLab{t: t, l: l, cfg: filepath.Join(l.Dir, "gateway.conf"), log: filepath.Join(l.Dir, "gateway.log")}
	out, err := s.run(lab.LAN1, "cat", "/sys/class/net/"+lab.HostIf+"/address")
	if err != nil {
		t.Fatal(err, out)
	}
	mac := strings.TrimSpace(out)
	dhcpWith := func(ip string) string {
		return fmt.Sprintf("\nconfig dhcp 'lan'\n\toption leasetime '1h'\n\nconfig host\n\toption mac '%s'\n\toption ip '%s'\n", mac, ip)
	}

	// A reservation outside the LAN's subnet: check-config on the router
	// refuses it (the LAN interface is there, with its address)...
	s.writeConfig(dhcpWith("10.9.9.9"))
	if out, err := s.run(lab.Gateway, binary, "check-config", "-c", s.cfg); err == nil || !strings.Contains(out, "10.9.9.9") {
		t.Fatalf("check-config accepted a reservation outside the LAN: %v\n%s", err, out)
	}
	// ...and the daemon runs without its DHCP service, which is logged
	// and retried.
	if _, err := l.Start(lab.Gateway, daemonName, []string{binary, "run", "-c", s.cfg}, s.log); err != nil {
		t.Fatal(err)
	}
	s.until(15*time.Second, "NAT up, DHCP failing and retried", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		d := service(st, "dhcp")
		if !st.NAT.Installed || !st.WANAddr.IsValid() || d.Failures < 2 || !strings.Contains(d.LastError, "10.9.9.9") {
			return fmt.Errorf("nat installed %v, wan %v, dhcp %+v", st.NAT.Installed, st.WANAddr, d)
		}
		if st.DHCP != nil {
			return fmt.Errorf("a DHCP server runs with a refused config")
		}
		return nil
	})

	// NAT forwards meanwhile: the static forward (WAN 8080 → lan1:80).
	var ln net.Listener
	if err := l.Do(lab.LAN1, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(lab.LAN1Addr.Addr(), 80).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "lan1 saw %s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	s.until(5*time.Second, "the static forward through NAT", func() error {
		var c net.Conn
		if err := l.Do(lab.Public, func() (err error) {
			c, err = net.DialTimeout("tcp", netip.AddrPortFrom(lab.WANAddr.Addr(), 8080).String(), 2*time.Second)
			return err
		}); err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "lan1 saw ") {
			err = fmt.Errorf("got %q", line)
		}
		return err
	})

	// SIGHUP with the reservation fixed: the DHCP service starts with the
	// new config at once, and the client gets its reserved address.
	s.writeConfig(dhcpWith("192.168.1.201"))
	s.signal(syscall.SIGHUP)
	s.until(5*time.Second, "the DHCP service running after the reload", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if d := service(st, "dhcp"); d.State != supervise.Running || st.DHCP == nil {
			return fmt.Errorf("dhcp %+v, server %v", d, st.DHCP)
		}
		return nil
	})
	if out, err := s.run(lab.LAN1, "ip", "-4", "addr", "flush", "dev", lab.HostIf); err != nil {
		t.Fatal(err, out)
	}
	out, err = s.run(lab.LAN1, "udhcpc", "-q", "-n", "-f", "-t", "5", "-T", "1", "-A", "1", "-s", hook, "-i", lab.HostIf)
	if err != nil || !strings.Contains(out, "lease of 192.168.1.201 obtained") {
		t.Fatalf("udhcpc after the reload: %v\n%s", err, out)
	}

	// A reload that the LAN refuses leaves the running DHCP server alone.
	st, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	before := service(st, "dhcp")
	s.writeConfig(dhcpWith("172.16.0.5"))
	s.signal(syscall.SIGHUP)
	s.until(5*time.Second, "the refused reload logged", func() error {
		b, _ := os.ReadFile(s.log)
		if !strings.Contains(string(b), "reload refused") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	st, err = s.status()
	if err != nil {
		t.Fatal(err)
	}
	if after := service(st, "dhcp"); after.State != supervise.Running || after.Restarts != before.Restarts || st.DHCP == nil {
		t.Fatalf("a refused reload touched the DHCP service: before %+v, after %+v", before, after)
	}

	// SIGTERM: every service stops, the table and the socket go.
	pid := s.pid()
	s.signal(syscall.SIGTERM)
	s.until(15*time.Second, "the daemon exits", func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("pid %d still alive", pid)
		}
		return nil
	})
	b, _ := os.ReadFile(s.log)
	if !strings.Contains(string(b), "gateway stopped") || strings.Contains(string(b), "did not stop") {
		t.Fatalf("unclean shutdown; log:\n%s", b)
	}
	if out, err := s.run(lab.Gateway, "nft", "list", "table", "inet", "gateway"); err == nil {
		t.Fatalf("the table outlived the daemon:\n%s", out)
	}
	if _, err := os.Stat(labgw.Socket(l)); err == nil {
		t.Fatal("the control socket outlived the daemon")
	}
}
