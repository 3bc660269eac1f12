package upnp

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	wire "gateway/upnp/gena"
)

// Subscription bounds (UDA 2.0 §4.1.2: the publisher chooses the
// duration).
const (
	minSubscription = 60 * time.Second
	maxSubscription = 30 * time.Minute
	perHostSubs     = 8
)

type subscription struct {
	sid      string
	path     string // the event URL: which service
	host     netip.Addr
	callback string
	expires  time.Time
	seq      uint32
	dirty    bool // an event is due
}

// gena holds the subscriptions and sends the events, one NOTIFY at a
// time from one goroutine: per-subscriber work is one pending event at
// most, whatever the rate of changes (changes coalesce).
type gena struct {
	s    *Server
	mu   sync.Mutex // guards subs
	subs map[string]*subscription
	wake chan struct{}
}

func newGena(s *Server) *gena {
	return &gena{s: s, subs: map[string]*subscription{}, wake: make(chan struct{}, 1)}
}

func (g *gena) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.subs)
}

func (g *gena) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// changed marks the subscribers of the service at event path dirty.
func (g *gena) changed(path string) {
	g.mu.Lock()
	for _, s := range g.subs {
		if s.path == path {
			s.dirty = true
		}
	}
	g.mu.Unlock()
	g.signal()
}

func (g *gena) serve(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	path := r.URL.Path
	if path != pathEvtIP && path != pathEvtCmn && path != pathEvtFC {
		http.NotFound(w, r)
		return
	}
	req, err := wire.ParseRequest(r.Method, textproto.MIMEHeader(r.Header))
	if err != nil {
		g.s.count("gena_malformed")
		code := http.StatusBadRequest
		if errors.Is(err, wire.ErrPrecondition) {
			code = http.StatusPreconditionFailed
		}
		http.Error(w, err.Error(), code)
		return
	}
	now := g.s.clock.Now()
	d := req.Timeout
	if d == 0 || d == wire.Infinite || d > maxSubscription {
		d = maxSubscription
	}
	d = max(d, minSubscription)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch req.Kind {
	case wire.Subscribe:
		// CallStranger (CVE-2020-12695): events go only to the
		// subscriber itself.
		var cb string
		for _, c := range req.Callbacks {
			u, err := url.Parse(c)
			if err != nil {
				continue
			}
			if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.Unmap() == client {
				cb = c
				break
			}
		}
		if cb == "" {
			g.s.count("gena_refused_callback")
			g.s.log.Info("upnp subscription refused: callback is not the subscriber", slog.String("client", client.String()), slog.Any("callback", req.Callbacks))
			http.Error(w, "callback must be the subscriber's own address", http.StatusPreconditionFailed)
			return
		}
		n := 0
		for _, s := range g.subs {
			if s.host == client {
				n++
			}
		}
		if len(g.subs) >= g.s.cfg.MaxSubscriptions || n >= perHostSubs {
			g.s.count("gena_refused_limit")
			http.Error(w, "too many subscriptions", http.StatusServiceUnavailable)
			return
		}
		var b [16]byte
		rand.Read(b[:])
		sid := fmt.Sprintf("uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
		g.subs[sid] = &subscription{sid: sid, path: path, host: client, callback: cb, expires: now.Add(d), dirty: true}
		g.s.count("gena_subscribe")
		w.Header().Set("SID", sid)
	case wire.Renew:
		s, ok := g.subs[req.SID]
		if !ok || s.host != client || s.path != path {
			g.s.count("gena_unknown_sid")
			http.Error(w, "unknown SID", http.StatusPreconditionFailed)
			return
		}
		s.expires = now.Add(d)
		g.s.count("gena_renew")
		w.Header().Set("SID", s.sid)
	case wire.Unsubscribe:
		s, ok := g.subs[req.SID]
		if !ok || s.host != client || s.path != path {
			g.s.count("gena_unknown_sid")
			http.Error(w, "unknown SID", http.StatusPreconditionFailed)
			return
		}
		delete(g.subs, req.SID)
		g.s.count("gena_unsubscribe")
		w.WriteHeader(http.StatusOK)
		return
	}
	t, _ := wire.FormatTimeout(d.Truncate(time.Second))
	w.Header().Set("TIMEOUT", t)
	w.Header().Set("SERVER", g.s.server())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	g.signal() // the initial event
}

// run sends the due events and drops expired subscriptions.
func (g *gena) run(ctx context.Context) {
	for {
		now := g.s.clock.Now()
		var due []subscription
		next := now.Add(maxSubscription)
		g.mu.Lock()
		for sid, s := range g.subs {
			if !s.expires.After(now) {
				delete(g.subs, sid)
				g.s.count("gena_expired")
				continue
			}
			if s.expires.Before(next) {
				next = s.expires
			}
			if s.dirty {
				s.dirty = false
				due = append(due, *s)
				s.seq++
				if s.seq == 0 {
					s.seq = 1 // UDA 2.0 §4.3.2: wraps to 1, not 0
				}
			}
		}
		g.mu.Unlock()
		for _, s := range due {
			if ctx.Err() != nil {
				return
			}
			g.notify(ctx, s)
		}
		t := g.s.clock.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-g.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// vars are the evented variables of the service at path, and values.
func (g *gena) vars(path string) []wire.Property {
	c := g.s.core
	switch path {
	case pathEvtIP:
		wan := c.NAT.WAN()
		status, ip := "Connected", ""
		if wan.IsValid() {
			ip = wan.String()
		} else {
			status = "Disconnected"
		}
		return []wire.Property{
			{Name: "PossibleConnectionTypes", Value: "IP_Routed"}, {Name: "ConnectionStatus", Value: status},
			{Name: "ExternalIPAddress", Value: ip}, {Name: "PortMappingNumberOfEntries", Value: strconv.Itoa(len(c.upnpMappings()))},
		}
	case pathEvtCmn:
		link := "Up"
		if c.Stats != nil {
			if st, err := c.Stats(); err == nil && !st.Up {
				link = "Down"
			}
		}
		return []wire.Property{{Name: "PhysicalLinkStatus", Value: link}}
	default:
		return []wire.Property{{Name: "FirewallEnabled", Value: "1"}, {Name: "InboundPinholeAllowed", Value: "1"}}
	}
}

// notify sends one NOTIFY (UDA 2.0 §4.3.2). It is written by hand on
// a TCP connection rather than with net/http's client, whose transport
// (HTTP/2, gzip, proxies) would add 250 KB to the router binary for
// one fixed request; the connection is bounded by a 2 s deadline.
func (g *gena) notify(ctx context.Context, s subscription) {
	body, err := wire.AppendPropertySet(nil, g.vars(s.path))
	if err != nil {
		return
	}
	u, err := url.Parse(s.callback)
	if err != nil {
		return
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	// The callback host was checked at SUBSCRIBE; dial exactly it.
	if a, err := netip.ParseAddr(host); err != nil || a.Unmap() != s.host {
		return
	}
	path := u.RequestURI()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		g.s.count("gena_notify_failed")
		return
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	req := fmt.Appendf(nil, "NOTIFY %s HTTP/1.1\r\nHOST: %s\r\nCONTENT-TYPE: text/xml; charset=\"utf-8\"\r\nNT: upnp:event\r\nNTS: upnp:propchange\r\nSID: %s\r\nSEQ: %d\r\nCONTENT-LENGTH: %d\r\nCONNECTION: close\r\n\r\n",
		path, u.Host, s.sid, s.seq, len(body))
	if _, err := c.Write(append(req, body...)); err != nil {
		g.s.count("gena_notify_failed")
		return
	}
	line, err := bufio.NewReader(io.LimitReader(c, 512)).ReadString('\n')
	if f := strings.Fields(line); err != nil || len(f) < 2 || f[1] != "200" {
		g.s.count("gena_notify_failed")
		return
	}
	g.s.count("gena_notify")
}
