package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"gateway/internal/facts"
	"gateway/internal/httpsrv"
	"gateway/web"
	"gateway/web/ui"
)

// svcWeb serves the admin panel on the LAN addresses.
const svcWeb = "web"

// PanelAssets serves the panel's pages (everything but /api/v1/): the
// pages of web/ui, embedded in the binary.
var PanelAssets http.Handler = ui.Handler()

// panelLimits bound what one browser can make the panel hold: the API's
// bodies are small (a batch of mappings from the panel is a few KiB).
var panelLimits = httpsrv.Limits{MaxBodyBytes: 256 << 10, WriteTimeout: 30 * time.Second}

// apiOnce holds the JSON API's handler: the control socket and the panel
// serve the same one (the same handlers, and whatever state they keep).
type apiOnce struct {
	once sync.Once
	h    http.Handler
}

// apiHandler is the JSON API's handler, made at its first use.
func (d *Daemon) apiHandler() http.Handler {
	d.api.once.Do(func() { d.api.h = web.NewAPI(d, d.log.With(slog.String("service", svcAPI))) })
	return d.api.h
}

// runWeb serves the panel on the LAN interfaces' addresses, never on the
// WAN's, and starts again when they change. The password and the
// sessions live as long as the service: a change of address keeps them.
func (d *Daemon) runWeb(ctx context.Context) error {
	cfg := d.config()
	wc := cfg.Web
	if wc == nil {
		return nil
	}
	log := d.log.With(slog.String("service", svcWeb))
	if wc.Password != "" {
		log.Warn("the web section's password is in plain text in the config file; option password_hash keeps only its hash", slog.String("config", cfg.File))
	}
	auth, err := web.NewAuth(web.AuthConfig{StateDir: cfg.StateDir, Password: wc.Password, PasswordHash: wc.PasswordHash, Logger: log})
	if err != nil {
		return err
	}
	panel, err := web.NewPanel(web.PanelConfig{API: d.apiHandler(), Assets: PanelAssets, Auth: auth, Hostnames: wc.Hostnames, HTTPS: wc.HTTPS, Logger: log})
	if err != nil {
		return err
	}
	hasAddr := func(l facts.LAN) bool { return len(webAddrs(cfg, l)) > 0 }
	for {
		l, err := d.facts.LAN.Wait(ctx, hasAddr)
		if err != nil {
			return nil // ctx is done
		}
		moved, err := d.serveWeb(ctx, cfg, l, panel, log)
		if !moved || ctx.Err() != nil {
			return err
		}
		log.Info("the LAN addresses changed; the panel restarts with them")
	}
}

// webAddrs are the addresses the panel listens on: each LAN interface's
// IPv4 and IPv6 addresses, link-local ones with their zone.
func webAddrs(cfg *Config, l facts.LAN) []netip.Addr {
	var out []netip.Addr
	for _, name := range cfg.LANs {
		for _, p := range l.Addrs[name] {
			a := p.Addr()
			if a.Is6() && a.IsLinkLocalUnicast() {
				a = a.WithZone(name)
			}
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// serveWeb serves the panel on l's addresses until ctx is done, a
// listener fails, or the addresses change (moved).
func (d *Daemon) serveWeb(ctx context.Context, cfg *Config, l facts.LAN, panel http.Handler, log *slog.Logger) (moved bool, err error) {
	wc := cfg.Web
	addrs := webAddrs(cfg, l)
	type server struct {
		ln net.Listener
		h  http.Handler
	}
	var srvs []server
	defer func() {
		if err != nil {
			for _, s := range srvs {
				s.ln.Close()
			}
		}
	}()
	// IPv6 addresses may still be tentative (duplicate address
	// detection) when the facts name them: bind them anyway.
	lc := net.ListenConfig{Control: freeBind}
	listen := func(a netip.Addr, port uint16) (net.Listener, error) {
		ln, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err != nil {
			return nil, fmt.Errorf("gateway: web: %w", err)
		}
		return ln, nil
	}
	var wrapTLS func(net.Listener) net.Listener
	if wc.HTTPS {
		if wrapTLS, err = panelTLS(cfg, addrs); err != nil {
			return false, err
		}
	}
	for _, a := range addrs {
		ln, err := listen(a, wc.Port)
		if err != nil {
			return false, err
		}
		if !wc.HTTPS {
			srvs = append(srvs, server{ln, panel})
			continue
		}
		srvs = append(srvs, server{ln, web.RedirectHTTPS(wc.HTTPSPort, wc.Hostnames)})
		if ln, err = listen(a, wc.HTTPSPort); err != nil {
			return false, err
		}
		srvs = append(srvs, server{wrapTLS(ln), panel})
	}
	log.Info("panel listening", slog.Any("addrs", addrs), slog.Int("port", int(wc.Port)), slog.Bool("https", wc.HTTPS))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if _, err := d.facts.LAN.Wait(ctx, func(n facts.LAN) bool { return !slices.Equal(webAddrs(cfg, n), addrs) }); err == nil {
			moved = true
			cancel()
		}
	})
	errs := make(chan error, len(srvs))
	for _, s := range srvs {
		wg.Go(func() {
			err := httpsrv.Serve(ctx, s.ln, s.h, panelLimits, log)
			if err != nil {
				cancel() // one failed listener restarts them all
			}
			errs <- err
		})
	}
	var all []error
	for range srvs {
		all = append(all, <-errs)
	}
	cancel()
	wg.Wait()
	if moved {
		return true, nil
	}
	if err := errors.Join(all...); err != nil {
		return false, fmt.Errorf("gateway: web: %w", err)
	}
	return false, nil
}

// reloadWeb starts, stops or restarts the panel for a new config.
func (d *Daemon) reloadWeb(old, cfg *Config) {
	switch {
	case old.Web == nil && cfg.Web != nil:
		d.sup.Add(svcWeb, d.runWeb)
	case old.Web != nil && cfg.Web == nil:
		d.sup.Remove(svcWeb)
	case cfg.Web != nil && !webEqual(old.Web, cfg.Web):
		d.sup.Restart(svcWeb)
	}
}

func webEqual(a, b *WebConfig) bool {
	x, y := *a, *b
	x.Line, y.Line = 0, 0
	return reflect.DeepEqual(x, y)
}
