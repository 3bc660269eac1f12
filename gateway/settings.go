package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gateway/dhcp"
	"gateway/gateway/uci"
	"gateway/nat44"
	"gateway/web"
)

// configEditor changes the daemon's config file for the API (the web
// panel and the CLI): each change edits the file as it is on disk now
// (so a hand edit made since the last load is kept), is checked as a
// reload checks the file, is written atomically, then applied to the
// running daemon. A change refused on the way leaves the file and the
// running config as they were.
type configEditor struct {
	// mu serializes changes to the file and to the running config: the
	// API's and a reload's (SIGHUP).
	mu   sync.Mutex
	path string
	// running is the config that runs now.
	running func() *Config
	// lan is the IPv4 address of a LAN interface, if it has one.
	lan func(iface string) (netip.Prefix, bool)
	// apply makes a checked config the running one; mu is held.
	apply func(*Config) error
}

var _ web.Config = (*configEditor)(nil)

// change edits the file with edit, checks the result and applies it.
// hint is the API field a problem belongs to when no option says better.
func (e *configEditor) change(hint string, edit func(f *uci.File) error) (*Config, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, err := os.ReadFile(e.path)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	f, err := uci.Parse(e.path, old)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", web.ErrConfigBroken, err)
	}
	if err := edit(f); err != nil {
		return nil, err
	}
	if err := f.Check(); err != nil {
		return nil, &web.FieldError{Field: hint, Err: err}
	}
	text := f.Append(nil)
	cfg, err := ParseConfig(e.path, text)
	if err != nil {
		return nil, e.refusal(text, err, hint)
	}
	if cfg.DHCP != nil {
		if lan, ok := e.lan(cfg.DHCP.Interface); ok {
			if err := checkDHCP(cfg, lan); err != nil {
				return nil, e.refusal(text, err, hint)
			}
		}
	}
	if err := writeFileAtomic(e.path, text); err != nil {
		return nil, err
	}
	if err := e.apply(cfg); err != nil {
		// The running config stays; so does the file.
		if werr := writeFileAtomic(e.path, old); werr != nil {
			return nil, errors.Join(err, werr)
		}
		return nil, &web.FieldError{Field: hint, Err: err}
	}
	return cfg, nil
}

// refusal turns the first problem ParseConfig found in text into a
// FieldError that names the API field of the option on its line.
func (e *configEditor) refusal(text []byte, err error, hint string) error {
	first := err
	if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
		first = j.Unwrap()[0]
	}
	field := hint
	if f, perr := uci.Parse(e.path, text); perr == nil {
		if fd := fieldAt(f, lineOf(first)); fd != "" {
			field = fd
		}
	}
	return &web.FieldError{Field: field, Err: first}
}

// apiFields names the API field of each option the API writes.
var apiFields = map[string]map[string]string{
	"dhcp":     {"start": "dhcp.start", "limit": "dhcp.limit", "leasetime": "dhcp.lease_time"},
	"upnp":     {"enabled": "upnp"},
	"pmp":      {"natpmp": "natpmp", "pcp": "pcp"},
	"nat":      {"secure_mode": "secure_mode", "filtering": "filtering", "host_limit": "host_limit"},
	"redirect": {"name": "name", "proto": "proto", "src_dport": "external_port", "dest_ip": "internal", "dest_port": "internal"},
	"host":     {"mac": "mac", "ip": "addr", "name": "hostname"},
}

// fieldAt is the API field of the option at line of f, "" if none.
func fieldAt(f *uci.File, line int) string {
	for _, s := range f.Sections {
		for _, o := range s.Options {
			if o.Line == line {
				return apiFields[s.Type][o.Name]
			}
		}
	}
	return ""
}

// writeFileAtomic replaces name with data so that a crash leaves the old
// file or the new one: a temp file in the same folder, fsync, rename,
// fsync of the folder. The file keeps its mode.
func writeFileAtomic(name string, data []byte) error {
	mode := os.FileMode(0o644)
	if st, err := os.Stat(name); err == nil {
		mode = st.Mode().Perm()
	}
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("gateway: write config: %w", err)
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Chmod(mode), f.Sync(), f.Close()); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("gateway: write config: %w", err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("gateway: write config: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// first is the first section of type typ; with add, one is added when
// there is none.
func first(f *uci.File, typ string, add bool) *uci.Section {
	if ss := f.SectionsOfType(typ); len(ss) > 0 {
		return ss[0]
	}
	if !add {
		return nil
	}
	return f.Add(typ, "")
}

func uciBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// uciDuration writes a lease time as OpenWrt does: "12h", "30m", "90s".
func uciDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/time.Second), 10)
}

// Settings implements web.Config: the running config's.
func (e *configEditor) Settings() web.Settings { return e.settingsOf(e.running()) }

func (e *configEditor) settingsOf(c *Config) web.Settings {
	limit := c.NAT.Policy.HostLimit
	if limit == 0 {
		limit = nat44.DefaultHostLimit
	}
	s := web.Settings{
		UPnP:       ptr(c.UPnP != nil),
		NATPMP:     ptr(c.PMP != nil && c.PMP.NATPMP),
		PCP:        ptr(c.PMP != nil && c.PMP.PCP),
		SecureMode: ptr(!c.NAT.Policy.AllowThirdParty),
		Filtering:  ptr(c.NAT.Filtering.String()),
		HostLimit:  ptr(limit),
	}
	if d := c.DHCP; d != nil {
		start, limit, lease := d.Start, d.Limit, d.LeaseTime
		if start == 0 {
			start = 10 // dhcpConfig's default
		}
		if limit == 0 {
			if lan, ok := e.lan(d.Interface); ok {
				limit = max(0, 1<<(32-lan.Bits())-2-start+1)
			}
		}
		if lease == 0 {
			lease = dhcp.DefaultLeaseTime
		}
		ls := web.Seconds(lease)
		s.DHCP = &web.DHCPSettings{Start: &start, Limit: &limit, LeaseTime: &ls}
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// SetSettings implements web.Config.
func (e *configEditor) SetSettings(s web.Settings) (web.Settings, error) {
	hint := settingsHint(s)
	cfg, err := e.change(hint, func(f *uci.File) error {
		run := e.running()
		if d := s.DHCP; d != nil {
			sec := first(f, "dhcp", false)
			if sec == nil || run.DHCP == nil {
				return &web.FieldError{Field: "dhcp", Err: errors.New("the DHCP server is off (no enabled dhcp section in the config)")}
			}
			if d.Start != nil {
				sec.Set("start", strconv.Itoa(*d.Start))
			}
			if d.Limit != nil {
				sec.Set("limit", strconv.Itoa(*d.Limit))
			}
			if d.LeaseTime != nil {
				sec.Set("leasetime", uciDuration(time.Duration(*d.LeaseTime)))
			}
		}
		if s.UPnP != nil {
			if sec := first(f, "upnp", *s.UPnP); sec != nil {
				sec.Set("enabled", uciBool(*s.UPnP))
			}
		}
		if s.NATPMP != nil || s.PCP != nil {
			natpmp := run.PMP != nil && run.PMP.NATPMP
			pcp := run.PMP != nil && run.PMP.PCP
			if s.NATPMP != nil {
				natpmp = *s.NATPMP
			}
			if s.PCP != nil {
				pcp = *s.PCP
			}
			sec := first(f, "pmp", true)
			sec.Del("enabled") // natpmp and pcp say it all
			sec.Set("natpmp", uciBool(natpmp))
			sec.Set("pcp", uciBool(pcp))
		}
		if s.SecureMode != nil || s.Filtering != nil || s.HostLimit != nil {
			sec := first(f, "nat", true)
			if s.SecureMode != nil {
				sec.Set("secure_mode", uciBool(*s.SecureMode))
			}
			if s.Filtering != nil {
				sec.Set("filtering", *s.Filtering)
			}
			if s.HostLimit != nil {
				sec.Set("host_limit", strconv.Itoa(*s.HostLimit))
			}
		}
		return nil
	})
	if err != nil {
		return web.Settings{}, err
	}
	return e.settingsOf(cfg), nil
}

// settingsHint is the field a change of s is about when a problem names
// no option: the first one set.
func settingsHint(s web.Settings) string {
	switch {
	case s.DHCP != nil && s.DHCP.Start != nil:
		return "dhcp.start"
	case s.DHCP != nil && s.DHCP.Limit != nil:
		return "dhcp.limit"
	case s.DHCP != nil:
		return "dhcp.lease_time"
	case s.UPnP != nil:
		return "upnp"
	case s.NATPMP != nil:
		return "natpmp"
	case s.PCP != nil:
		return "pcp"
	case s.SecureMode != nil:
		return "secure_mode"
	case s.Filtering != nil:
		return "filtering"
	}
	return "host_limit"
}

// Forwards implements web.Config: the running config's static forwards,
// one per protocol.
func (e *configEditor) Forwards() []web.Forward {
	var out []web.Forward
	for _, m := range e.running().Forwards {
		out = append(out, web.Forward{Name: m.Description, Proto: m.Proto.String(), ExternalPort: m.ExternalPort, Internal: m.Internal})
	}
	return out
}

// AddForward implements web.Config: a new `redirect` section, written as
// fw4 writes one.
func (e *configEditor) AddForward(fw web.Forward) error {
	switch {
	case fw.Proto != "tcp" && fw.Proto != "udp" && fw.Proto != "tcpudp":
		return &web.FieldError{Field: "proto", Err: fmt.Errorf("proto %q: want tcp, udp or tcpudp", fw.Proto)}
	case fw.ExternalPort == 0:
		return &web.FieldError{Field: "external_port", Err: errors.New("external_port must be 1-65535")}
	case !fw.Internal.Addr().Is4():
		return &web.FieldError{Field: "internal", Err: fmt.Errorf("internal %v is not an IPv4 address and port", fw.Internal)}
	}
	port := fw.Internal.Port()
	if port == 0 {
		port = fw.ExternalPort
	}
	_, err := e.change("external_port", func(f *uci.File) error {
		s := f.Add("redirect", "")
		if fw.Name != "" {
			s.Set("name", fw.Name)
		}
		s.Set("target", "DNAT")
		s.Set("src", "wan")
		s.Set("dest", "lan")
		s.Set("proto", strings.ReplaceAll(fw.Proto, "tcpudp", "tcp udp"))
		s.Set("src_dport", strconv.Itoa(int(fw.ExternalPort)))
		s.Set("dest_ip", fw.Internal.Addr().String())
		s.Set("dest_port", strconv.Itoa(int(port)))
		return nil
	})
	return err
}

// RemoveForward implements web.Config. A section that forwards both
// protocols keeps the other one.
func (e *configEditor) RemoveForward(k nat44.Key) error {
	_, err := e.change("external_port", func(f *uci.File) error {
		p := &parser{f: f}
		for _, s := range f.SectionsOfType("redirect") {
			ms, ok := p.redirect(s)
			if !ok {
				continue // disabled, or broken: not a running forward
			}
			var rest []string
			found := false
			for _, m := range ms {
				if m.Key() == k {
					found = true
				} else {
					rest = append(rest, m.Proto.String())
				}
			}
			if !found {
				continue
			}
			if len(rest) == 0 {
				f.Remove(s)
			} else {
				s.Set("proto", strings.Join(rest, " "))
			}
			return nil
		}
		return fmt.Errorf("%w: no static forward %v", nat44.ErrNotFound, k)
	})
	return err
}

// Reservations implements web.Config: the running config's.
func (e *configEditor) Reservations() []dhcp.Reservation {
	if d := e.running().DHCP; d != nil {
		return d.Reservations
	}
	return nil
}

// AddReservation implements web.Config: a new `host` section, as
// OpenWrt's /etc/config/dhcp has them.
func (e *configEditor) AddReservation(r dhcp.Reservation) error {
	switch {
	case len(r.MAC) != 6:
		return &web.FieldError{Field: "mac", Err: fmt.Errorf("mac %q is not an Ethernet address", r.MAC)}
	case !r.Addr.Is4():
		return &web.FieldError{Field: "addr", Err: fmt.Errorf("addr %v is not an IPv4 address", r.Addr)}
	}
	_, err := e.change("addr", func(f *uci.File) error {
		for _, h := range f.SectionsOfType("host") {
			mac, _ := h.Get("mac")
			ip, _ := h.Get("ip")
			if m, err := net.ParseMAC(mac); err == nil && m.String() == r.MAC.String() {
				return &web.FieldError{Field: "mac", Err: fmt.Errorf("%v is already reserved (%s)", r.MAC, ip)}
			}
			if a, err := netip.ParseAddr(ip); err == nil && a == r.Addr {
				return &web.FieldError{Field: "addr", Err: fmt.Errorf("%v is already reserved (for %s)", r.Addr, mac)}
			}
		}
		s := f.Add("host", "")
		if r.Hostname != "" {
			s.Set("name", r.Hostname)
		}
		s.Set("mac", r.MAC.String())
		s.Set("ip", r.Addr.String())
		return nil
	})
	return err
}

// RemoveReservation implements web.Config.
func (e *configEditor) RemoveReservation(mac net.HardwareAddr) error {
	_, err := e.change("mac", func(f *uci.File) error {
		for _, s := range f.SectionsOfType("host") {
			v, _ := s.Get("mac")
			if m, err := net.ParseMAC(v); err == nil && m.String() == mac.String() {
				f.Remove(s)
				return nil
			}
		}
		return fmt.Errorf("%w: no reservation for %v", nat44.ErrNotFound, mac)
	})
	return err
}
