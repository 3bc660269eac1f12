//go:build linux && !nolab

package gateway_test

// The daemon's services are supervised: a DHCP service that cannot start
// is logged and retried while NAT keeps forwarding, a SIGHUP with a fixed
// DHCP section brings it up with the new config, a DHCP section the LAN
// refuses leaves the running one in place, and SIGTERM stops everything
// cleanly.

import (
	"fmt"
	"gateway/gateway/labgw"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/gateway"
	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/internal/supervise"
	"gateway/internal/testenv"
)

func service(st gateway.Status, name string) supervise.Status {
	for _, sv := range st.Services {
		if sv.Name == name {
			return sv
		}
	}
	return supervise.Status{}
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
	g := &gw{t: t, l: l, cfg: labgw.ConfigPath(l)}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(labgw.Log(l))
			t.Logf("gateway log:\n%s", labgw.Tail(b, 40))
		}
	})
	out, err := g.run(lab.LAN1, "cat", "/sys/class/net/"+lab.HostIf+"/address")
	if err != nil {
		t.Fatal(err, out)
	}
	mac := strings.TrimSpace(out)
	dhcpWith := func(ip string) string {
		return fmt.Sprintf("\nconfig dhcp 'lan'\n\toption leasetime '1h'\n\nconfig host\n\toption mac '%s'\n\toption ip '%s'\n", mac, ip)
	}

	// A reservation outside the LAN's subnet: check-config on the router
	// refuses it (the LAN interface is there, with its address)...
	g.writeConfig(labgw.BaseConfig(l, dhcpWith("10.9.9.9")))
	if out, err := g.run(lab.Gateway, binary, "check-config", "-c", g.cfg); err == nil || !strings.Contains(out, "10.9.9.9") {
		t.Fatalf("check-config accepted a reservation outside the LAN: %v\n%s", err, out)
	}
	// ...and the daemon runs without its DHCP service, which is logged
	// and retried.
	if _, err := l.Start(lab.Gateway, labgw.Daemon, []string{binary, "run", "-c", g.cfg}, labgw.Log(l)); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 15*time.Second, "NAT up, DHCP failing and retried", func() error {
		st, err := g.tryStatus()
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
	tcpServer(t, l, lab.LAN1, hostPort(lan1, 80))
	eventually(t, "the static forward through NAT", func() error {
		got, err := tcpGet(l, lab.Public, hostPort(wanAddr, 8080))
		if err == nil && !strings.HasPrefix(got, "lan1 saw ") {
			err = fmt.Errorf("got %q", got)
		}
		return err
	})

	// SIGHUP with the reservation fixed: the DHCP service starts with the
	// new config at once, and the client gets its reserved address.
	g.writeConfig(labgw.BaseConfig(l, dhcpWith("192.168.1.201")))
	g.signal(syscall.SIGHUP)
	eventuallyWithin(t, 5*time.Second, "the DHCP service running after the reload", func() error {
		st, err := g.tryStatus()
		if err != nil {
			return err
		}
		if d := service(st, "dhcp"); d.State != supervise.Running || st.DHCP == nil {
			return fmt.Errorf("dhcp %+v, server %v", d, st.DHCP)
		}
		return nil
	})
	if out, err := g.run(lab.LAN1, "ip", "-4", "addr", "flush", "dev", lab.HostIf); err != nil {
		t.Fatal(err, out)
	}
	out, err = g.run(lab.LAN1, "udhcpc", "-q", "-n", "-f", "-t", "5", "-T", "1", "-A", "1", "-s", hook, "-i", lab.HostIf)
	if err != nil || !strings.Contains(out, "lease of 192.168.1.201 obtained") {
		t.Fatalf("udhcpc after the reload: %v\n%s", err, out)
	}

	// A reload that the LAN refuses leaves the running DHCP server alone.
	st, err := g.tryStatus()
	if err != nil {
		t.Fatal(err)
	}
	before := service(st, "dhcp")
	g.writeConfig(labgw.BaseConfig(l, dhcpWith("172.16.0.5")))
	g.signal(syscall.SIGHUP)
	eventuallyWithin(t, 5*time.Second, "the refused reload logged", func() error {
		b, _ := os.ReadFile(labgw.Log(l))
		if !strings.Contains(string(b), "reload refused") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	st, err = g.tryStatus()
	if err != nil {
		t.Fatal(err)
	}
	if after := service(st, "dhcp"); after.State != supervise.Running || after.Restarts != before.Restarts || st.DHCP == nil {
		t.Fatalf("a refused reload touched the DHCP service: before %+v, after %+v", before, after)
	}

	// SIGTERM: every service stops, the table and the socket go.
	pid := g.pid()
	g.signal(syscall.SIGTERM)
	eventuallyWithin(t, 15*time.Second, "the daemon exits", func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("pid %d still alive", pid)
		}
		return nil
	})
	b, _ := os.ReadFile(labgw.Log(l))
	if !strings.Contains(string(b), "gateway stopped") || strings.Contains(string(b), "did not stop") {
		t.Fatalf("unclean shutdown; log:\n%s", b)
	}
	if out, err := g.run(lab.Gateway, "nft", "list", "table", "inet", "gateway"); err == nil {
		t.Fatalf("the table outlived the daemon:\n%s", out)
	}
	if _, err := os.Stat(labgw.Socket(l)); err == nil {
		t.Fatal("the control socket outlived the daemon")
	}
}
