package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PanelConfig configures the web panel.
type PanelConfig struct {
	// API serves /api/v1/ (NewAPI's handler: the same handlers as the
	// control socket); required.
	API http.Handler
	// Assets serves every other path (the pages); nil answers 503.
	Assets http.Handler
	// Auth is the password and the sessions; required.
	Auth *Auth
	// Hostnames are the names (besides IP literals and "localhost") that
	// the Host header may carry, as "option hostname" lists them.
	// Others are refused: a name that resolves to the router is how DNS
	// rebinding reaches it from a web page elsewhere.
	Hostnames []string
	// HTTPS marks the session cookie Secure (and names it __Host-…).
	HTTPS  bool
	Logger *slog.Logger // nil discards
}

// Panel is the web panel's handler: the JSON API behind a session, and
// the pages.
type Panel struct {
	cfg    PanelConfig
	log    *slog.Logger
	cookie string
	auth   *http.ServeMux
}

// The panel's security headers, on every answer.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// CSRFHeader carries the session's token on every change.
const CSRFHeader = "X-CSRF-Token"

// NewPanel returns the panel's handler.
func NewPanel(cfg PanelConfig) (*Panel, error) {
	if cfg.API == nil || cfg.Auth == nil {
		return nil, errors.New("web: a panel needs an API and an Auth")
	}
	if cfg.Assets == nil {
		cfg.Assets = NotBuilt
	}
	p := &Panel{cfg: cfg, log: cfg.Logger, cookie: "session"}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPS {
		p.cookie = "__Host-session" // the browser keeps it to this origin, Secure
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /api/v1/auth", p.state)
	m.HandleFunc("POST /api/v1/auth/setup", p.setup)
	m.HandleFunc("POST /api/v1/auth/login", p.login)
	m.HandleFunc("POST /api/v1/auth/logout", p.logout)
	m.HandleFunc("POST /api/v1/auth/password", p.password)
	p.auth = m
	return p, nil
}

// AllowedHost reports whether host (a Host header, with or without a
// port) names the router without a DNS name an attacker controls: an IP
// literal, "localhost", or one of names.
func AllowedHost(host string, names []string) bool {
	h := host
	if hh, port, err := net.SplitHostPort(host); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return false
		}
		h = hh
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" {
		return true
	}
	for _, n := range names {
		if strings.EqualFold(strings.TrimSuffix(n, "."), h) {
			return true
		}
	}
	return false
}

func (p *Panel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Host == "" {
		fail(w, http.StatusBadRequest, errors.New("no Host header"))
		return
	}
	if !AllowedHost(r.Host, p.cfg.Hostnames) {
		// DNS rebinding: a page of another site whose name now points
		// here. 421: this server does not answer for that name.
		fail(w, http.StatusMisdirectedRequest, fmt.Errorf("host %q is not this router's: use its address, or add the name as the web section's hostname", r.Host))
		return
	}
	if r.URL.Path != "/api/v1" && !strings.HasPrefix(r.URL.Path, "/api/v1/") {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
			fail(w, http.StatusNotFound, errors.New("no such API"))
			return
		}
		p.cfg.Assets.ServeHTTP(w, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	if changes(r.Method) && !sameOrigin(r) {
		fail(w, http.StatusForbidden, errors.New("request from another origin"))
		return
	}
	if r.URL.Path == "/api/v1/auth" || strings.HasPrefix(r.URL.Path, "/api/v1/auth/") {
		p.auth.ServeHTTP(w, r)
		return
	}
	_, csrf, ok := p.session(r)
	if !ok {
		fail(w, http.StatusUnauthorized, errors.New("not signed in"))
		return
	}
	if changes(r.Method) && !csrfEqual(r.Header.Get(CSRFHeader), csrf) {
		fail(w, http.StatusForbidden, errors.New("missing or wrong "+CSRFHeader+" header"))
		return
	}
	p.cfg.API.ServeHTTP(w, r)
}

// changes reports whether a request method changes something (needs the
// CSRF token).
func changes(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// sameOrigin refuses a change whose Origin (sent by browsers on every
// POST, PUT and DELETE) is another host than the one asked.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not a browser, or an old one: the CSRF token decides
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// session returns the request's session.
func (p *Panel) session(r *http.Request) (id, csrf string, ok bool) {
	c, err := r.Cookie(p.cookie)
	if err != nil {
		return "", "", false
	}
	csrf, ok = p.cfg.Auth.Session(c.Value)
	return c.Value, csrf, ok
}

// client is the address a request comes from (no proxy is trusted).
func client(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return ap.Addr().Unmap()
}

// AuthState is the answer of GET /api/v1/auth.
type AuthState struct {
	PasswordSet bool   `json:"password_set"`
	SignedIn    bool   `json:"signed_in"`
	CSRF        string `json:"csrf,omitempty"`
}

func (p *Panel) state(w http.ResponseWriter, r *http.Request) {
	_, csrf, ok := p.session(r)
	reply(w, http.StatusOK, AuthState{PasswordSet: p.cfg.Auth.PasswordSet(), SignedIn: ok, CSRF: csrf})
}

type passwordBody struct {
	Password string `json:"password"`
}

type csrfBody struct {
	CSRF string `json:"csrf"`
}

// decodeAuth reads a small JSON body (a password) with no unknown fields.
func decodeAuth(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("bad body: %w", err))
		return false
	}
	return true
}

// signIn starts a session and sets its cookie.
func (p *Panel) signIn(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(p.cookie); err == nil {
		p.cfg.Auth.EndSession(c.Value) // a new ID at each sign-in (no fixation)
	}
	id, csrf := p.cfg.Auth.NewSession()
	http.SetCookie(w, &http.Cookie{Name: p.cookie, Value: id, Path: "/", HttpOnly: true, Secure: p.cfg.HTTPS, SameSite: http.SameSiteStrictMode})
	reply(w, http.StatusOK, csrfBody{csrf})
}

// limited counts a password attempt of the request's client; false (and
// a 429 sent) when it must wait.
func (p *Panel) limited(w http.ResponseWriter, r *http.Request) bool {
	wait, ok := p.cfg.Auth.Attempt(client(r))
	if ok {
		return false
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	fail(w, http.StatusTooManyRequests, fmt.Errorf("too many tries: wait %d s", secs))
	return true
}

func (p *Panel) setup(w http.ResponseWriter, r *http.Request) {
	var b passwordBody
	if !decodeAuth(w, r, &b) {
		return
	}
	switch err := p.cfg.Auth.Setup(b.Password); {
	case errors.Is(err, ErrPasswordSet):
		fail(w, http.StatusConflict, err)
	case err != nil:
		fail(w, http.StatusBadRequest, err)
	default:
		p.log.Info("panel password set", slog.String("client", client(r).String()))
		p.signIn(w, r)
	}
}

func (p *Panel) login(w http.ResponseWriter, r *http.Request) {
	var b passwordBody
	if !decodeAuth(w, r, &b) {
		return
	}
	if !p.cfg.Auth.PasswordSet() {
		fail(w, http.StatusConflict, errors.New("no password yet: set one (setup)"))
		return
	}
	if p.limited(w, r) {
		return
	}
	if !p.cfg.Auth.Check(b.Password) {
		p.log.Warn("panel sign-in refused: wrong password", slog.String("client", client(r).String()))
		fail(w, http.StatusUnauthorized, ErrWrongPassword)
		return
	}
	p.cfg.Auth.Succeeded(client(r))
	p.log.Info("panel sign-in", slog.String("client", client(r).String()))
	p.signIn(w, r)
}

func (p *Panel) logout(w http.ResponseWriter, r *http.Request) {
	id, csrf, ok := p.session(r)
	if ok {
		if !csrfEqual(r.Header.Get(CSRFHeader), csrf) {
			fail(w, http.StatusForbidden, errors.New("missing or wrong "+CSRFHeader+" header"))
			return
		}
		p.cfg.Auth.EndSession(id)
	}
	http.SetCookie(w, &http.Cookie{Name: p.cookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: p.cfg.HTTPS, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

type changeBody struct {
	Old string `json:"old"`
	New string `json:"new"`
}

func (p *Panel) password(w http.ResponseWriter, r *http.Request) {
	id, csrf, ok := p.session(r)
	if !ok {
		fail(w, http.StatusUnauthorized, errors.New("not signed in"))
		return
	}
	if !csrfEqual(r.Header.Get(CSRFHeader), csrf) {
		fail(w, http.StatusForbidden, errors.New("missing or wrong "+CSRFHeader+" header"))
		return
	}
	var b changeBody
	if !decodeAuth(w, r, &b) {
		return
	}
	if p.limited(w, r) { // the old password is a guess like a login's
		return
	}
	switch err := p.cfg.Auth.Change(b.Old, b.New, id); {
	case errors.Is(err, ErrWrongPassword):
		fail(w, http.StatusForbidden, fmt.Errorf("old password: %w", err))
	case err != nil:
		fail(w, http.StatusBadRequest, err)
	default:
		p.cfg.Auth.Succeeded(client(r))
		p.log.Info("panel password changed", slog.String("client", client(r).String()))
		w.WriteHeader(http.StatusNoContent)
	}
}

// RedirectHTTPS answers every request on plain HTTP with a redirect to
// the same path over HTTPS on port, after the same Host check as the
// panel.
func RedirectHTTPS(port uint16, hostnames []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.Host == "" || !AllowedHost(r.Host, hostnames) {
			http.Error(w, "unknown host", http.StatusMisdirectedRequest)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if port != 443 {
			host = net.JoinHostPort(host, strconv.Itoa(int(port)))
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		u := url.URL{Scheme: "https", Host: host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
		// 302, not 301: a browser would keep a permanent one after
		// HTTPS is turned off.
		http.Redirect(w, r, u.String(), http.StatusFound)
	})
}

// NotBuilt is the assets handler of a binary built without the pages.
var NotBuilt http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "panel assets not built", http.StatusServiceUnavailable)
})
