//go:build linux

package tailscaletest

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tailscale.com/net/netmon"
	"tailscale.com/net/portmapper"
	"tailscale.com/util/eventbus"

	"gateway/gateway"
	"gateway/gateway/client"
	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/gateway/labgw"
	"gateway/nat44"
)

// The helper process: run by the test inside lan1's network namespace, so
// that every socket tailscale's client opens, from any goroutine, is there.
const (
	helperEnv  = "TAILSCALETEST_HELPER"  // "pmp" or "pcp": which protocol the client may use
	releaseEnv = "TAILSCALETEST_RELEASE" // a file whose appearance tells the helper to release
	localPort  = 41641                   // tailscale's usual UDP port
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

// helper gets a mapping with tailscale's portmapper, prints it, waits for
// the release file and closes the client, which releases the mapping.
func helper() int {
	mode := os.Getenv(helperEnv)
	bus := eventbus.New()
	defer bus.Close()
	c := portmapper.NewClient(portmapper.Config{
		EventBus: bus,
		NetMon:   netmon.NewStatic(),
		Logf:     func(f string, a ...any) { fmt.Fprintf(os.Stderr, "portmapper: "+f+"\n", a...) },
		DebugKnobs: &portmapper.DebugKnobs{
			DisableUPnPFunc: func() bool { return true },
			DisablePMPFunc:  func() bool { return mode == "pcp" },
			DisablePCPFunc:  func() bool { return mode == "pmp" },
		},
	})
	c.SetGatewayLookupFunc(func() (gw, myIP netip.Addr, ok bool) {
		return lab.LANAddr.Addr(), lab.LAN1Addr.Addr(), true
	})
	c.SetLocalPort(localPort)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Probe(ctx)
	fmt.Printf("PROBE pmp=%v pcp=%v upnp=%v err=%v\n", res.PMP, res.PCP, res.UPnP, err)
	for ctx.Err() == nil {
		if ext, ok := c.GetCachedMappingOrStartCreatingOne(); ok {
			fmt.Printf("EXTERNAL %v\n", ext)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ctx.Err() != nil {
		fmt.Println("NO MAPPING")
		return 1
	}
	for {
		if _, err := os.Stat(os.Getenv(releaseEnv)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Close() // releases the mapping
	fmt.Println("RELEASED")
	return 0
}

// TestPortmapper runs the gateway in a lab and tailscale's portmapper in
// lan1, once with NAT-PMP only and once with PCP only: the client probes
// the service, gets a mapping that the gateway lists as the protocol's,
// and its release deletes it (for PCP, a release with a fresh nonce,
// honoured by the gateway's release-by-mapping rule).
func TestPortmapper(t *testing.T) {
	l := labtest.New(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, "gateway/cmd/gateway").CombinedOutput(); err != nil {
		t.Fatalf("build gateway: %v\n%s", err, out)
	}
	cfg := labgw.ConfigPath(l)
	if err := os.WriteFile(cfg, []byte(labgw.Config(l, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := labgw.Start(ctx, l, bin, cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.SetStaticIPv4(lab.LAN1); err != nil {
		t.Fatal(err)
	}
	api := client.New(labgw.Socket(l))
	mapping := func() (nat44.Mapping, bool) {
		var ms []nat44.Mapping
		if err := api.Do("GET", "/api/v1/mappings", nil, &ms); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Internal == netip.AddrPortFrom(lab.LAN1Addr.Addr(), localPort) {
				return m, true
			}
		}
		return nat44.Mapping{}, false
	}
	for _, mode := range []string{"pmp", "pcp"} {
		t.Run(mode, func(t *testing.T) {
			release := filepath.Join(dir, "release-"+mode)
			cmd := l.Command(ctx, lab.LAN1, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode, releaseEnv+"="+release)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if t.Failed() {
					t.Logf("helper stderr:\n%s", stderr.String())
				}
			}()
			lines := bufio.NewScanner(out)
			var ext netip.AddrPort
			for lines.Scan() {
				line := lines.Text()
				t.Log(line)
				if s, ok := strings.CutPrefix(line, "EXTERNAL "); ok {
					ext, _ = netip.ParseAddrPort(s)
					break
				}
			}
			if ext.Addr() != lab.WANAddr.Addr() || ext.Port() == 0 {
				cmd.Wait()
				t.Fatalf("no mapping on %v", lab.WANAddr.Addr())
			}
			m, ok := mapping()
			wantOwner := nat44.OwnerNATPMP
			if mode == "pcp" {
				wantOwner = nat44.OwnerPCP
			}
			if !ok || m.Owner != wantOwner || m.ExternalPort != ext.Port() || m.Proto != nat44.UDP {
				t.Fatalf("gateway's mapping %+v (found %v); want %s udp/%d", m, ok, wantOwner, ext.Port())
			}
			if err := os.WriteFile(release, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for lines.Scan() {
				t.Log(lines.Text())
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("helper: %v", err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				if _, ok := mapping(); !ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the released mapping is still there")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if mode == "pcp" {
				var st gateway.Status
				if err := api.Do("GET", "/api/v1/status", nil, &st); err != nil {
					t.Fatal(err)
				}
				if st.PMP["pcp_release_by_mapping"] != 1 {
					t.Errorf("counters %v: want one release by mapping (tailscale's fresh nonce)", st.PMP)
				}
			}
		})
	}
}
