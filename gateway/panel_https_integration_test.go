//go:build linux && !nolab && !nohttps

package gateway_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	"gateway/gateway/lab"
	"gateway/gateway/labgw"
)

// TestPanelHTTPS: with option https, the panel answers over TLS with a
// certificate made on first start and kept across restarts, and plain
// HTTP redirects to it.
func TestPanelHTTPS(t *testing.T) {
	g := startGateway(t, "\nconfig web 'web'\n\toption https '1'\n\toption password 'https password'\n")
	l := g.l
	lanAddr := lab.LANAddr.Addr().String()
	p := newPanelClient(t, l, lab.LAN1, "https://"+lanAddr)
	var fp []byte
	eventually(t, "the panel answers over HTTPS", func() error {
		res, err := p.c.Get("https://" + lanAddr + "/api/v1/auth")
		if err != nil {
			return err
		}
		res.Body.Close()
		fp = res.TLS.PeerCertificates[0].Raw
		return res.TLS.PeerCertificates[0].VerifyHostname(lanAddr)
	})
	p.login("https password")
	var cookie *http.Cookie
	u, _ := url.Parse("https://" + lanAddr + "/")
	for _, c := range p.c.Jar.Cookies(u) {
		cookie = c
	}
	if cookie == nil || cookie.Name != "__Host-session" {
		t.Errorf("session cookie %v", cookie)
	}
	h := newPanelClient(t, l, lab.LAN1, "http://"+lanAddr)
	if res, _ := h.do("GET", "/x?y=1", nil); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "https://"+lanAddr+"/x?y=1" {
		t.Errorf("plain HTTP: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	// A restart keeps the certificate.
	g.signal(syscall.SIGKILL)
	eventually(t, "the daemon is gone", func() error {
		if g.pid() != 0 {
			return fmt.Errorf("pid %d", g.pid())
		}
		return nil
	})
	if err := labgw.Start(t.Context(), l, binary, g.cfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the panel answers over HTTPS after a restart", func() error {
		res, err := p.c.Get("https://" + lanAddr + "/api/v1/auth")
		if err != nil {
			return err
		}
		res.Body.Close()
		if !bytes.Equal(res.TLS.PeerCertificates[0].Raw, fp) {
			t.Fatal("the certificate changed across a restart")
		}
		return nil
	})
	noAnswer(t, l, lab.Public, fmt.Sprintf("%v:443", wanAddr))
}
