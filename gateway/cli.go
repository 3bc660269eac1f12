package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gateway/nat44"
	"gateway/web"
)

const usage = `gateway: a home gateway in one binary

  gateway run [-c FILE]             run the daemon (SIGHUP reloads, SIGTERM stops)
  gateway check-config [-c FILE]    check a config file and exit
  gateway version                   print the version
  gateway status [-s SOCKET | -c FILE]   what the running daemon is doing
  gateway mappings [-s SOCKET] [list | add PROTO EXTPORT ADDR:PORT [LIFETIME [DESCRIPTION]] | del PROTO EXTPORT]
  gateway sessions [-s SOCKET]      live NAT sessions
  gateway leases [-s SOCKET]        DHCP leases
  gateway lab up [--name N] [--config FILE]
  gateway lab down|status [--name N] [--json]
  gateway lab exec [--name N] HOST -- CMD [ARGS...]

FILE defaults to ` + DefaultConfigPath + `; SOCKET to the config's control_socket
(` + defaultControlSocket + ` if unset).
`

// Main runs the command line and returns the exit code.
func Main(args []string) int {
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
		fmt.Println("gateway", Version)
	case "status", "mappings", "sessions", "leases":
		err = clientCmd(cmd, rest)
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
	return fs.String("c", DefaultConfigPath, "config file")
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
	return Run(ctx, *path, hup, log, level)
}

func checkConfigCmd(args []string) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	fmt.Printf("%s: ok (wan %s, lan %s, %d forwards, filtering %s)\n", *path, c.WAN, strings.Join(c.LANs, " "), len(c.Forwards), c.NAT.Filtering)
	return nil
}

// client speaks the JSON API over the control socket. It writes one
// HTTP/1.1 request per connection and reads the answer with
// http.ReadResponse: net/http's Transport would add 0.4 MiB to a router
// binary for a job this small.
type client struct {
	socket string
}

func newClient(socket string) *client { return &client{socket: socket} }

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *client) do(method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = b
	}
	conn, err := net.DialTimeout("unix", c.socket, 5*time.Second)
	if err != nil {
		return fmt.Errorf("gateway: is the daemon running? %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", method, path, len(payload))
	if _, err := conn.Write(append([]byte(req), payload...)); err != nil {
		return fmt.Errorf("gateway: send to %s: %w", c.socket, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("gateway: answer from %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e web.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("gateway: %s", e.Error)
		}
		return fmt.Errorf("gateway: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
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
		*socket = defaultControlSocket
		if c, err := LoadConfig(*path); err == nil {
			*socket = c.ControlSocket
		}
	}
	c := newClient(*socket)
	rest := fs.Args()
	var out json.RawMessage
	switch {
	case cmd == "status":
		if err := c.do("GET", "/api/v1/status", nil, &out); err != nil {
			return err
		}
	case cmd == "sessions" || cmd == "leases":
		if err := c.do("GET", "/api/v1/"+cmd, nil, &out); err != nil {
			return err
		}
	case len(rest) == 0 || rest[0] == "list":
		if err := c.do("GET", "/api/v1/mappings", nil, &out); err != nil {
			return err
		}
	case rest[0] == "add" && len(rest) >= 4 && len(rest) <= 6:
		req, err := mappingRequest(rest[1:])
		if err != nil {
			return err
		}
		if err := c.do("POST", "/api/v1/mappings", []web.MappingRequest{req}, &out); err != nil {
			return err
		}
	case rest[0] == "del" && len(rest) == 3:
		return c.do("DELETE", "/api/v1/mappings/"+rest[1]+"/"+rest[2], nil, nil)
	default:
		return fmt.Errorf("gateway: mappings: bad arguments %q\n\n%s", rest, usage)
	}
	os.Stdout.Write(out)
	return nil
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
		secs, err := strconv.ParseUint(a[3], 10, 32)
		if err != nil {
			return r, fmt.Errorf("gateway: lifetime %q is not seconds", a[3])
		}
		r.Lifetime = web.Seconds(time.Duration(secs) * time.Second)
	}
	if len(a) > 4 {
		r.Description = a[4]
	}
	return r, nil
}
