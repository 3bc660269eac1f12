package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
func (c *fakeClock) NewTimer(d time.Duration) *time.Timer            { return time.NewTimer(d) }
func (c *fakeClock) AfterFunc(d time.Duration, f func()) *time.Timer { return time.AfterFunc(d, f) }

// fakeAPI stands for NewAPI's handler: it answers what it was asked.
var fakeAPI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	code := http.StatusOK
	if r.Method == http.MethodPost {
		code = http.StatusCreated
	}
	reply(w, code, map[string]string{"api": r.Method + " " + r.URL.Path})
})

var fakeAssets = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	io.WriteString(w, "<!doctype html>page")
})

type tpanel struct {
	t     *testing.T
	p     *Panel
	auth  *Auth
	clock *fakeClock
	dir   string
}

func newPanel(t *testing.T, ac AuthConfig, https bool) *tpanel {
	t.Helper()
	fc := &fakeClock{now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	if ac.StateDir == "" {
		ac.StateDir = t.TempDir()
	}
	ac.Clock = fc
	a, err := NewAuth(ac)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPanel(PanelConfig{API: fakeAPI, Assets: fakeAssets, Auth: a, Hostnames: []string{"router.lan"}, HTTPS: https})
	if err != nil {
		t.Fatal(err)
	}
	return &tpanel{t: t, p: p, auth: a, clock: fc, dir: ac.StateDir}
}

// req is one request to the panel.
type req struct {
	method, path, body string
	host               string // default 192.168.1.1
	from               string // remote address; default 192.168.1.100:40000
	cookie             *http.Cookie
	csrf               string
	header             map[string]string
}

func (tp *tpanel) do(q req) *http.Response {
	tp.t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r := httptest.NewRequest(q.method, q.path, body)
	r.Host = "192.168.1.1"
	if q.host != "" {
		r.Host = q.host
	}
	if q.host == "-" {
		r.Host = ""
	}
	r.RemoteAddr = "192.168.1.100:40000"
	if q.from != "" {
		r.RemoteAddr = q.from
	}
	if q.cookie != nil {
		r.AddCookie(q.cookie)
	}
	if q.csrf != "" {
		r.Header.Set(CSRFHeader, q.csrf)
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	tp.p.ServeHTTP(w, r)
	return w.Result()
}

func want(t *testing.T, name string, res *http.Response, code int) []byte {
	t.Helper()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != code {
		t.Fatalf("%s: status %d, want %d; body %s", name, res.StatusCode, code, b)
	}
	return b
}

// signIn signs in (setup or login) and returns the cookie and token.
func (tp *tpanel) signIn(path, pw, from string) (*http.Cookie, string) {
	tp.t.Helper()
	res := tp.do(req{method: "POST", path: path, body: `{"password":"` + pw + `"}`, from: from})
	b := want(tp.t, path, res, http.StatusOK)
	var cb csrfBody
	if err := json.Unmarshal(b, &cb); err != nil || cb.CSRF == "" {
		tp.t.Fatalf("%s: body %s: %v", path, b, err)
	}
	cs := res.Cookies()
	if len(cs) != 1 {
		tp.t.Fatalf("%s: cookies %v", path, cs)
	}
	return cs[0], cb.CSRF
}

func TestPanelSetupAndSession(t *testing.T) {
	tp := newPanel(t, AuthConfig{}, false)
	var st AuthState
	json.Unmarshal(want(t, "auth", tp.do(req{method: "GET", path: "/api/v1/auth"}), 200), &st)
	if st != (AuthState{}) {
		t.Fatalf("before setup: %+v", st)
	}
	want(t, "status without a session", tp.do(req{method: "GET", path: "/api/v1/status"}), http.StatusUnauthorized)
	want(t, "login before setup", tp.do(req{method: "POST", path: "/api/v1/auth/login", body: `{"password":"whatever1"}`}), http.StatusConflict)
	want(t, "short password", tp.do(req{method: "POST", path: "/api/v1/auth/setup", body: `{"password":"short"}`}), http.StatusBadRequest)
	want(t, "unknown field", tp.do(req{method: "POST", path: "/api/v1/auth/setup", body: `{"pass":"longenough"}`}), http.StatusBadRequest)

	cookie, csrf := tp.signIn("/api/v1/auth/setup", "correct horse", "")
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Secure || cookie.Name != "session" {
		t.Errorf("cookie flags: %+v", cookie)
	}
	if len(cookie.Value) < 43 { // 256 bits in base64
		t.Errorf("session ID %q is short", cookie.Value)
	}
	want(t, "second setup", tp.do(req{method: "POST", path: "/api/v1/auth/setup", body: `{"password":"another one"}`}), http.StatusConflict)
	json.Unmarshal(want(t, "auth", tp.do(req{method: "GET", path: "/api/v1/auth", cookie: cookie}), 200), &st)
	if st != (AuthState{PasswordSet: true, SignedIn: true, CSRF: csrf}) {
		t.Errorf("signed in: %+v", st)
	}
	// The password is kept hashed, 0600.
	fi, err := os.Stat(filepath.Join(tp.dir, PasswordFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(filepath.Join(tp.dir, PasswordFile))
	if !strings.HasPrefix(string(b), "$argon2id$v=19$m=4096,t=3,p=1$") || strings.Contains(string(b), "correct horse") {
		t.Errorf("password file: %q", b)
	}

	got := want(t, "status", tp.do(req{method: "GET", path: "/api/v1/status", cookie: cookie}), 200)
	if !strings.Contains(string(got), "GET /api/v1/status") {
		t.Errorf("the API did not answer: %s", got)
	}
	body := `[{"proto":"tcp","external_port":1}]`
	want(t, "change without token", tp.do(req{method: "POST", path: "/api/v1/mappings", body: body, cookie: cookie}), http.StatusForbidden)
	want(t, "change with a wrong token", tp.do(req{method: "POST", path: "/api/v1/mappings", body: body, cookie: cookie, csrf: csrf + "x"}), http.StatusForbidden)
	want(t, "delete without token", tp.do(req{method: "DELETE", path: "/api/v1/mappings/tcp/1", cookie: cookie}), http.StatusForbidden)
	want(t, "put without token", tp.do(req{method: "PUT", path: "/api/v1/settings", body: "{}", cookie: cookie}), http.StatusForbidden)
	want(t, "change from another origin", tp.do(req{method: "POST", path: "/api/v1/mappings", body: body, cookie: cookie, csrf: csrf, header: map[string]string{"Origin": "http://evil.example"}}), http.StatusForbidden)
	want(t, "change", tp.do(req{method: "POST", path: "/api/v1/mappings", body: body, cookie: cookie, csrf: csrf, header: map[string]string{"Origin": "http://192.168.1.1"}}), http.StatusCreated)
	want(t, "token without session", tp.do(req{method: "POST", path: "/api/v1/mappings", body: body, csrf: csrf}), http.StatusUnauthorized)
	want(t, "a made-up session", tp.do(req{method: "GET", path: "/api/v1/status", cookie: &http.Cookie{Name: "session", Value: strings.Repeat("A", 43)}}), http.StatusUnauthorized)

	want(t, "logout without token", tp.do(req{method: "POST", path: "/api/v1/auth/logout", cookie: cookie}), http.StatusForbidden)
	res := tp.do(req{method: "POST", path: "/api/v1/auth/logout", cookie: cookie, csrf: csrf})
	want(t, "logout", res, http.StatusNoContent)
	if cs := res.Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("logout cookie: %v", cs)
	}
	want(t, "status after logout", tp.do(req{method: "GET", path: "/api/v1/status", cookie: cookie}), http.StatusUnauthorized)
	// A new sign-in gets a new ID.
	c2, _ := tp.signIn("/api/v1/auth/login", "correct horse", "")
	if c2.Value == cookie.Value {
		t.Error("the session ID was reused")
	}
}

func TestPanelSessionTimeouts(t *testing.T) {
	tp := newPanel(t, AuthConfig{Password: "from the config"}, false)
	c, _ := tp.signIn("/api/v1/auth/login", "from the config", "")
	tp.clock.Add(29 * time.Minute)
	want(t, "29 min idle", tp.do(req{method: "GET", path: "/api/v1/status", cookie: c}), 200)
	tp.clock.Add(31 * time.Minute)
	want(t, "31 min idle", tp.do(req{method: "GET", path: "/api/v1/status", cookie: c}), http.StatusUnauthorized)
	// Used every 20 minutes, a session still ends after 12 hours.
	c, _ = tp.signIn("/api/v1/auth/login", "from the config", "")
	for range 35 {
		tp.clock.Add(20 * time.Minute)
		want(t, "in use", tp.do(req{method: "GET", path: "/api/v1/status", cookie: c}), 200)
	}
	tp.clock.Add(20 * time.Minute)
	want(t, "past 12 h", tp.do(req{method: "GET", path: "/api/v1/status", cookie: c}), http.StatusUnauthorized)
}

func TestPanelPasswordChange(t *testing.T) {
	dir := t.TempDir()
	tp := newPanel(t, AuthConfig{StateDir: dir, Password: "config password"}, false)
	want(t, "setup with a config password", tp.do(req{method: "POST", path: "/api/v1/auth/setup", body: `{"password":"mine mine"}`}), http.StatusConflict)
	c1, t1 := tp.signIn("/api/v1/auth/login", "config password", "")
	c2, _ := tp.signIn("/api/v1/auth/login", "config password", "192.168.1.101:1")
	want(t, "change without token", tp.do(req{method: "POST", path: "/api/v1/auth/password", body: `{"old":"config password","new":"new password"}`, cookie: c1}), http.StatusForbidden)
	want(t, "change without session", tp.do(req{method: "POST", path: "/api/v1/auth/password", body: `{"old":"config password","new":"new password"}`, csrf: t1}), http.StatusUnauthorized)
	want(t, "wrong old", tp.do(req{method: "POST", path: "/api/v1/auth/password", body: `{"old":"nope nope","new":"new password"}`, cookie: c1, csrf: t1}), http.StatusForbidden)
	want(t, "short new", tp.do(req{method: "POST", path: "/api/v1/auth/password", body: `{"old":"config password","new":"new"}`, cookie: c1, csrf: t1}), http.StatusBadRequest)
	want(t, "change", tp.do(req{method: "POST", path: "/api/v1/auth/password", body: `{"old":"config password","new":"new password"}`, cookie: c1, csrf: t1}), http.StatusNoContent)
	want(t, "this session", tp.do(req{method: "GET", path: "/api/v1/status", cookie: c1}), 200)
	want(t, "the other session", tp.do(req{method: "GET", path: "/api/v1/status", cookie: c2}), http.StatusUnauthorized)
	want(t, "old password", tp.do(req{method: "POST", path: "/api/v1/auth/login", body: `{"password":"config password"}`, from: "10.0.0.1:1"}), http.StatusUnauthorized)
	tp.signIn("/api/v1/auth/login", "new password", "")

	// A restart with the same config keeps the changed password; a new
	// password in the config resets it.
	for _, tt := range []struct {
		name    string
		cfg     AuthConfig
		ok, bad string
	}{
		{"same config", AuthConfig{Password: "config password"}, "new password", "config password"},
		{"config changed", AuthConfig{Password: "reset password"}, "reset password", "new password"},
		{"config removed", AuthConfig{}, "reset password", "new password"},
	} {
		tt.cfg.StateDir = dir
		a, err := NewAuth(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Check(tt.ok) || a.Check(tt.bad) {
			t.Errorf("%s: %q should work, %q not", tt.name, tt.ok, tt.bad)
		}
	}
	h, _ := HashPassword("hashed one")
	for range 2 {
		a, err := NewAuth(AuthConfig{StateDir: dir, PasswordHash: h})
		if err != nil || !a.Check("hashed one") {
			t.Fatalf("password_hash: %v", err)
		}
	}
	if _, err := NewAuth(AuthConfig{StateDir: dir, PasswordHash: "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}); err == nil {
		t.Error("a hash asking for 1 GiB was taken")
	}
}

func TestPanelRateLimit(t *testing.T) {
	tp := newPanel(t, AuthConfig{Password: "the password"}, false)
	login := func(pw, from string) *http.Response {
		return tp.do(req{method: "POST", path: "/api/v1/auth/login", body: `{"password":"` + pw + `"}`, from: from})
	}
	const me = "192.168.1.100:5000"
	for i := range 5 {
		want(t, "wrong "+string(rune('1'+i)), login("wrong", me), http.StatusUnauthorized)
	}
	res := login("the password", me)
	want(t, "sixth try, right password", res, http.StatusTooManyRequests)
	if ra := res.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	// Another port, another session: the same client.
	want(t, "another port", login("the password", "192.168.1.100:6000"), http.StatusTooManyRequests)
	want(t, "with a cookie", tp.do(req{method: "POST", path: "/api/v1/auth/login", body: `{"password":"the password"}`, from: me, cookie: &http.Cookie{Name: "session", Value: "x"}}), http.StatusTooManyRequests)
	// IPv6: the /64 is one client.
	for range 5 {
		want(t, "v6 wrong", login("wrong", "[2001:db8:1:1::5]:1"), http.StatusUnauthorized)
	}
	want(t, "v6 other address of the /64", login("the password", "[2001:db8:1:1::6]:1"), http.StatusTooManyRequests)
	// Someone else is not slowed down.
	want(t, "other client", login("the password", "192.168.1.101:1"), http.StatusOK)
	// The wait doubles.
	tp.clock.Add(time.Second)
	want(t, "after 1 s", login("wrong", me), http.StatusUnauthorized)
	res = login("the password", me)
	want(t, "then", res, http.StatusTooManyRequests)
	if ra := res.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}
	tp.clock.Add(2 * time.Second)
	want(t, "right after the wait", login("the password", me), http.StatusOK)
	want(t, "count reset", login("wrong", me), http.StatusUnauthorized)
	// Password changes count as tries too.
	c, tok := tp.signIn("/api/v1/auth/login", "the password", "192.168.1.102:1")
	for range 5 {
		want(t, "change, wrong old", tp.do(req{method: "POST", path: "/api/v1/auth/password", body: `{"old":"wrong","new":"new password"}`, cookie: c, csrf: tok, from: "192.168.1.102:1"}), http.StatusForbidden)
	}
	want(t, "change, limited", tp.do(req{method: "POST", path: "/api/v1/auth/password", body: `{"old":"the password","new":"new password"}`, cookie: c, csrf: tok, from: "192.168.1.102:1"}), http.StatusTooManyRequests)
}

func TestPanelHostAndHeaders(t *testing.T) {
	tp := newPanel(t, AuthConfig{}, false)
	for _, tt := range []struct {
		host string
		code int
	}{
		{"192.168.1.1", 200},
		{"192.168.1.1:80", 200},
		{"127.0.0.1:8080", 200},
		{"[2001:db8::1]", 200},
		{"[fe80::1%25br-lan]:80", 200},
		{"localhost:8080", 200},
		{"ROUTER.lan", 200},
		{"router.lan.:443", 200},
		{"evil.example", http.StatusMisdirectedRequest},
		{"192.168.1.1.nip.io", http.StatusMisdirectedRequest},
		{"192.168.1.1:http", http.StatusMisdirectedRequest},
		{"-", http.StatusBadRequest},
	} {
		t.Run(tt.host, func(t *testing.T) {
			for _, path := range []string{"/", "/api/v1/auth"} {
				res := tp.do(req{method: "GET", path: path, host: tt.host})
				want(t, path, res, tt.code)
				for h, v := range map[string]string{
					"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
					"Referrer-Policy":         "no-referrer",
					"X-Content-Type-Options":  "nosniff",
					"X-Frame-Options":         "DENY",
				} {
					if got := res.Header.Get(h); got != v {
						t.Errorf("%s: %s: %q, want %q", path, h, got, v)
					}
				}
			}
		})
	}
	for _, path := range []string{"/api/v1/auth", "/api/v1/status", "/api/v2/x"} {
		if cc := tp.do(req{method: "GET", path: path}).Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", path, cc)
		}
	}
	b := want(t, "page", tp.do(req{method: "GET", path: "/index.html"}), 200)
	if string(b) != "<!doctype html>page" {
		t.Errorf("assets: %q", b)
	}
	// Without assets: 503.
	p, _ := NewPanel(PanelConfig{API: fakeAPI, Auth: tp.auth})
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "192.168.1.1"
	p.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "not built") {
		t.Errorf("no assets: %d %q", w.Code, w.Body)
	}
}

func TestPanelHTTPSCookie(t *testing.T) {
	tp := newPanel(t, AuthConfig{}, true)
	c, tok := tp.signIn("/api/v1/auth/setup", "correct horse", "")
	if c.Name != "__Host-session" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie %+v", c)
	}
	want(t, "status", tp.do(req{method: "GET", path: "/api/v1/status", cookie: c}), 200)
	want(t, "plain cookie name", tp.do(req{method: "GET", path: "/api/v1/status", cookie: &http.Cookie{Name: "session", Value: c.Value}}), 401)
	_ = tok
}

func TestRedirectHTTPS(t *testing.T) {
	for _, tt := range []struct {
		port       uint16
		host, want string
	}{
		{443, "192.168.1.1", "https://192.168.1.1/x?y=1"},
		{443, "192.168.1.1:80", "https://192.168.1.1/x?y=1"},
		{8443, "192.168.1.1:80", "https://192.168.1.1:8443/x?y=1"},
		{443, "[2001:db8::1]:80", "https://[2001:db8::1]/x?y=1"},
		{8443, "[2001:db8::1]", "https://[2001:db8::1]:8443/x?y=1"},
		{443, "evil.example", ""},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/x?y=1", nil)
		r.Host = tt.host
		RedirectHTTPS(tt.port, nil).ServeHTTP(w, r)
		if got := w.Header().Get("Location"); got != tt.want {
			t.Errorf("%d %s: Location %q, want %q (%d)", tt.port, tt.host, got, tt.want, w.Code)
		}
	}
}

func TestHash(t *testing.T) {
	h, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyPassword(h, "pw") || VerifyPassword(h, "pW") || VerifyPassword(h, "") {
		t.Error("verify")
	}
	h2, _ := HashPassword("pw")
	if h == h2 {
		t.Error("no salt")
	}
	for _, bad := range []string{
		"", "pw", "$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4096,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4096,t=99,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$!!",
		"$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA", // short hash
	} {
		if CheckHash(bad) == nil || VerifyPassword(bad, "pw") {
			t.Errorf("%q was taken", bad)
		}
	}
}
