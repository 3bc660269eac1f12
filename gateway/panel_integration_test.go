//go:build linux && !nolab

package gateway_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gateway/gateway/lab"
	"gateway/gateway/lab/labtest"
	"gateway/gateway/labgw"
	"gateway/internal/testenv"
	"gateway/web"
)

// panelClient is a browser in host: it keeps the session cookie and sends
// the CSRF token on changes.
type panelClient struct {
	t    *testing.T
	c    *http.Client
	base string
	csrf string
}

func newPanelClient(t *testing.T, l *lab.Lab, host, base string) *panelClient {
	c := nsClient(l, host)
	c.Jar, _ = cookiejar.New(nil)
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // self-signed
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &panelClient{t: t, c: c, base: base}
}

func (p *panelClient) do(method, path string, body any) (*http.Response, []byte) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.base+path, rd)
	if p.csrf != "" {
		req.Header.Set(web.CSRFHeader, p.csrf)
	}
	res, err := p.c.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func (p *panelClient) login(pw string) {
	p.t.Helper()
	res, b := p.do("POST", "/api/v1/auth/login", map[string]string{"password": pw})
	var cb struct{ CSRF string }
	if res.StatusCode != 200 || json.Unmarshal(b, &cb) != nil || cb.CSRF == "" {
		p.t.Fatalf("login: %d %s", res.StatusCode, b)
	}
	p.csrf = cb.CSRF
}

// noAnswer checks that nothing answers on addr from host: the TCP
// handshake does not complete (the input policy drops it) or is refused.
func noAnswer(t *testing.T, l *lab.Lab, host, addr string) {
	t.Helper()
	err := l.Do(host, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil {
		t.Errorf("%s reached %s", host, addr)
	}
}

// TestPanelOnLANOnly: the daemon's panel answers on the LAN address with
// the lab's first password, and nothing answers on the WAN's port 80,
// over IPv4 or IPv6.
func TestPanelOnLANOnly(t *testing.T) {
	g := startGateway(t, "")
	l := g.l
	lanURL := fmt.Sprintf("http://%v", lab.LANAddr.Addr())
	p := newPanelClient(t, l, lab.LAN1, lanURL)
	var st web.AuthState
	eventually(t, "the panel answers on the LAN", func() error {
		res, err := p.c.Get(lanURL + "/api/v1/auth")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("Cache-Control") != "no-store" {
			return fmt.Errorf("headers %v", res.Header)
		}
		return json.NewDecoder(res.Body).Decode(&st)
	})
	if !st.PasswordSet || st.SignedIn {
		t.Fatalf("auth state %+v; want the lab's password set, not signed in", st)
	}
	if res, b := p.do("GET", "/api/v1/status", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status without a session: %d %s", res.StatusCode, b)
	}
	if res, b := p.do("POST", "/api/v1/auth/login", map[string]string{"password": "not the password"}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %d %s", res.StatusCode, b)
	}
	p.login(labgw.PanelPassword(l))
	res, b := p.do("GET", "/api/v1/status", nil)
	if res.StatusCode != 200 || !strings.Contains(string(b), wanAddr.String()) {
		t.Fatalf("status: %d %s", res.StatusCode, b)
	}
	// A change through the panel reaches the mapping service.
	res, b = p.do("POST", "/api/v1/mappings", []map[string]any{{"proto": "udp", "external_port": 3074, "internal": lan2.String() + ":3074", "lifetime": 600, "description": "panel"}})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("add a mapping: %d %s", res.StatusCode, b)
	}
	var ms []struct {
		ExternalPort uint16 `json:"external_port"`
	}
	if err := g.api().Do("GET", "/api/v1/mappings", nil, &ms); err != nil || !strings.Contains(fmt.Sprint(ms), "3074") {
		t.Errorf("mappings on the control socket: %v %v", ms, err)
	}
	// The pages' path answers with the same headers (the assets are
	// another helper's: built or not, the panel serves that path).
	res, _ = p.do("GET", "/", nil)
	if res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("GET /: %d %v", res.StatusCode, res.Header)
	}
	// Over IPv6 on the LAN too.
	p6 := newPanelClient(t, l, lab.LAN1, "http://"+net.JoinHostPort(lab.LANAddr6.Addr().String(), "80"))
	if res, b := p6.do("GET", "/api/v1/auth", nil); res.StatusCode != 200 {
		t.Errorf("over IPv6: %d %s", res.StatusCode, b)
	}
	// A name that is not the router's (DNS rebinding) is refused.
	req, _ := http.NewRequest("GET", lanURL+"/api/v1/auth", nil)
	req.Host = "evil.example"
	if res, err := p.c.Do(req); err != nil || res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host evil.example: %v %v", res, err)
	}

	// From the internet: nothing, neither on the WAN address nor on the
	// LAN's (routed through the gateway).
	noAnswer(t, l, lab.Public, fmt.Sprintf("%v:80", wanAddr))
	noAnswer(t, l, lab.Public, net.JoinHostPort(lab.WANAddr6.Addr().String(), "80"))
	// The panel holds no socket on a wildcard or WAN address.
	out := g.mustRun(lab.Gateway, "ss", "-Hltn", "sport = :80")
	for _, bad := range []string{"0.0.0.0:80", "*:80", "[::]:80", wanAddr.String() + ":80"} {
		if strings.Contains(out, bad) {
			t.Errorf("listening on %s:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, lab.LANAddr.Addr().String()+":80") {
		t.Errorf("not listening on the LAN address:\n%s", out)
	}

	// A reload with a new password in the config resets it (the way a
	// forgotten one is reset) and moves the panel to the new port.
	g.writeConfig(labgw.Config(l, "\nconfig web 'web'\n\toption port '8081'\n\toption password 'a reset password'\n"))
	g.signal(syscall.SIGHUP)
	p2 := newPanelClient(t, l, lab.LAN1, lanURL+":8081")
	eventually(t, "the new password on the new port", func() error {
		res, err := p2.c.Post(lanURL+":8081/api/v1/auth/login", "application/json", strings.NewReader(`{"password":"a reset password"}`))
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("login: %d", res.StatusCode)
		}
		return nil
	})
	noAnswer(t, l, lab.LAN1, lanURL[len("http://"):]+":80")
}

// TestLabUpPrintsPanel: `gateway lab up` prints the loopback URL of site
// A's panel and the first password it set, and both work from this
// machine through the lab's proxy.
func TestLabUpPrintsPanel(t *testing.T) {
	labtest.Skip(t)
	testenv.Tool(t, "udhcpc", "udhcpc")
	name := fmt.Sprintf("p%06x", time.Now().UnixNano()&0xffffff)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binary, args...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { run("lab", "down", "--name", name) })
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	out, err := run("lab", "up", "--name", name, "--http-port", strconv.Itoa(port))
	if err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`The web panel of site A: (http://127\.0\.0\.1:\d+/) on this machine[^\n]*\nIts first password \(made for this lab\): (\S+)\n`).FindStringSubmatch(out)
	if m == nil || m[1] != fmt.Sprintf("http://127.0.0.1:%d/", port) {
		t.Fatalf("lab up did not print the panel's URL and password:\n%s", out)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	body, _ := json.Marshal(map[string]string{"password": m[2]})
	res, err := c.Post(m[1]+"api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), "csrf") {
		t.Fatalf("login with the printed password at %s: %d %s", m[1], res.StatusCode, b)
	}
}
