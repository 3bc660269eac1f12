package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gateway/gateway"
	"gateway/gateway/client"
	"gateway/nat44"
	"gateway/web"
)

const usage = `gateway: a home gateway in one binary

  gateway run [-c FILE]             run the daemon (SIGHUP reloads, SIGTERM stops)
  gateway check-config [-c FILE]    check a config file (and, on the router, against its interfaces) and exit
  gateway version                   print the version
  gateway status [-s SOCKET | -c FILE]   what the running daemon is doing
  gateway mappings [-s SOCKET] [list | add PROTO EXTPORT ADDR:PORT [LIFETIME [DESCRIPTION]] | del PROTO EXTPORT]
  gateway pinholes [-s SOCKET] [list | add PROTO [ADDR]:PORT [LIFETIME [REMOTE]] | del ID]
  gateway sessions [-s SOCKET]      live NAT sessions
  gateway leases [-s SOCKET]        DHCP leases
  gateway relay6to4 -addr IPV4 [-name NAME]   run a 6to4 relay between 6to4 sites and native IPv6
  gateway lab up|down|status|exec ...   a virtual home network to try it in; "gateway lab" says more

FILE defaults to ` + gateway.DefaultConfigPath + `; SOCKET to the config's control_socket
(` + gateway.DefaultControlSocket + ` if unset).
`

// cli runs the command line and returns the exit code.
func cli(args []string) int {
	if len(args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[1], args[2:]; cmd {
	case "run":
		err = runCmd(rest)
	case "check-config":
		err = checkConfigCmd(rest)
	case "version":
		fmt.Println("gateway", gateway.Version)
	case "status", "mappings", "pinholes", "sessions", "leases":
		err = clientCmd(cmd, rest)
	case "relay6to4":
		err = relay6to4Cmd(rest)
	case "lab":
		err = labCmd(rest)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "gateway: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
		}
		return 1
	}
	return 0
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", gateway.DefaultConfigPath, "config file")
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return gateway.Run(ctx, *path, hup, log, level)
}

func checkConfigCmd(args []string) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := gateway.LoadConfig(*path)
	if err != nil {
		return err
	}
	notes, err := gateway.CheckHost(c)
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Printf("%s: note: %s\n", *path, n)
	}
	fmt.Printf("%s: ok (wan %s, lan %s, %d forwards, filtering %s)\n", *path, c.WAN, strings.Join(c.LANs, " "), len(c.Forwards), c.NAT.Filtering)
	return nil
}

func clientCmd(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	socket := fs.String("s", "", "control socket of the daemon (default: control_socket of the config)")
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" {
		*socket = gateway.DefaultControlSocket
		if c, err := gateway.LoadConfig(*path); err == nil {
			*socket = c.ControlSocket
		}
	}
	c := client.New(*socket)
	rest := fs.Args()
	var out json.RawMessage
	var err error
	switch cmd {
	case "status":
		err = c.Do("GET", "/api/v1/status", nil, &out)
	case "sessions", "leases":
		err = c.Do("GET", "/api/v1/"+cmd, nil, &out)
	case "mappings":
		err = mappingsCmd(c, rest, &out)
	case "pinholes":
		err = pinholesCmd(c, rest, &out)
	}
	if err != nil {
		return err
	}
	os.Stdout.Write(out)
	return nil
}

func mappingsCmd(c *client.Client, rest []string, out *json.RawMessage) error {
	switch {
	case len(rest) == 0 || rest[0] == "list":
		return c.Do("GET", "/api/v1/mappings", nil, out)
	case rest[0] == "add" && len(rest) >= 4 && len(rest) <= 6:
		req, err := mappingRequest(rest[1:])
		if err != nil {
			return err
		}
		return c.Do("POST", "/api/v1/mappings", []web.MappingRequest{req}, out)
	case rest[0] == "del" && len(rest) == 3:
		return c.Do("DELETE", "/api/v1/mappings/"+rest[1]+"/"+rest[2], nil, nil)
	}
	return fmt.Errorf("gateway: mappings: bad arguments %q\n\n%s", rest, usage)
}

func pinholesCmd(c *client.Client, rest []string, out *json.RawMessage) error {
	switch {
	case len(rest) == 0 || rest[0] == "list":
		return c.Do("GET", "/api/v1/pinholes", nil, out)
	case rest[0] == "add" && len(rest) >= 3 && len(rest) <= 5:
		req, err := pinholeRequest(rest[1:])
		if err != nil {
			return err
		}
		return c.Do("POST", "/api/v1/pinholes", req, out)
	case rest[0] == "del" && len(rest) == 2:
		return c.Do("DELETE", "/api/v1/pinholes/"+rest[1], nil, nil)
	}
	return fmt.Errorf("gateway: pinholes: bad arguments %q\n\n%s", rest, usage)
}

// mappingRequest reads PROTO EXTPORT ADDR:PORT [LIFETIME [DESCRIPTION]].
func mappingRequest(a []string) (web.MappingRequest, error) {
	var r web.MappingRequest
	p, err := nat44.ParseProto(a[0])
	if err != nil {
		return r, err
	}
	port, err := strconv.ParseUint(a[1], 10, 16)
	if err != nil {
		return r, fmt.Errorf("gateway: external port %q: %w", a[1], err)
	}
	in, err := netip.ParseAddrPort(a[2])
	if err != nil {
		return r, fmt.Errorf("gateway: internal endpoint %q: %w", a[2], err)
	}
	r = web.MappingRequest{Proto: p, ExternalPort: uint16(port), Internal: in}
	if len(a) > 3 {
		if r.Lifetime, err = seconds(a[3]); err != nil {
			return r, err
		}
	}
	if len(a) > 4 {
		r.Description = a[4]
	}
	return r, nil
}

// pinholeRequest reads PROTO [ADDR]:PORT [LIFETIME [REMOTE]].
func pinholeRequest(a []string) (web.PinholeRequest, error) {
	var r web.PinholeRequest
	p, err := nat44.ParseProto(a[0])
	if err != nil {
		return r, err
	}
	in, err := netip.ParseAddrPort(a[1])
	if err != nil {
		return r, fmt.Errorf("gateway: internal endpoint %q (want [ADDR]:PORT): %w", a[1], err)
	}
	r = web.PinholeRequest{Proto: p, Internal: in}
	if len(a) > 2 {
		if r.Lifetime, err = seconds(a[2]); err != nil {
			return r, err
		}
	}
	if len(a) > 3 {
		if r.Remote, err = netip.ParseAddr(a[3]); err != nil {
			return r, fmt.Errorf("gateway: remote host %q: %w", a[3], err)
		}
	}
	return r, nil
}

func seconds(s string) (web.Seconds, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("gateway: lifetime %q is not seconds", s)
	}
	return web.Seconds(time.Duration(n) * time.Second), nil
}
