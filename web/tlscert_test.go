//go:build !nohttps

package web

import (
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCertMadeAndKept(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	lan := []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("2001:db8:1::1")}
	c1, err := LoadOrMakeCert(dir, lan, []string{"router.lan"}, now)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, CertFile))
	blk, _ := pem.Decode(b)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("192.168.1.1"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("router.lan"); err != nil {
		t.Error(err)
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key %v", leaf.PublicKeyAlgorithm)
	}
	// A restart (other addresses now) reuses it.
	c2, err := LoadOrMakeCert(dir, []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if string(c2.Certificate[0]) != string(c1.Certificate[0]) {
		t.Error("the certificate was not reused")
	}
	// Expired: a new one.
	c3, err := LoadOrMakeCert(dir, lan, nil, now.Add(11*365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if string(c3.Certificate[0]) == string(c1.Certificate[0]) {
		t.Error("an expired certificate was reused")
	}
	// Damaged: a new one.
	os.WriteFile(filepath.Join(dir, CertFile), []byte("junk"), 0o644)
	if _, err := LoadOrMakeCert(dir, lan, nil, now); err != nil {
		t.Errorf("a damaged certificate: %v", err)
	}
}
