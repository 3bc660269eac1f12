package ra

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"gateway/internal/journal"
)

// savedState is the state file: every prefix advertised, with the
// uplink's deadlines and, once withdrawn, its expiry (RFC 9096 3.5: a CE
// router remembers what it advertised, so that after a restart with a new
// prefix it can still deprecate the old one).
type savedState struct {
	Prefixes []entry `json:"prefixes"`
}

func loadState(path string) ([]entry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ra: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("ra: %s: %w", path, err)
	}
	return st.Prefixes, nil
}

// saveState writes entries atomically and durably (temp file, fsync,
// rename). It runs only when the set of prefixes or a deadline changes:
// a few writes a day on a home line, not one per RA.
func saveState(path string, entries []entry) error {
	b, err := json.MarshalIndent(savedState{Prefixes: entries}, "", "\t")
	if err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	if err := journal.WriteFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("ra: %w", err)
	}
	return nil
}

// ulaFile keeps the ULA prefix in the state directory.
const ulaFile = "ula-prefix"

// ULA returns the site's Unique Local /64 (RFC 4193: fd00::/8, a random
// 40-bit Global ID, subnet 0), made on the first call and kept in
// stateDir, so that LAN hosts keep their ULA addresses across restarts.
// The Global ID comes from crypto/rand: RFC 4193 3.2 asks for a
// pseudo-random Global ID, and 3.2.2's SHA-1 recipe is only a suggestion.
func ULA(stateDir string) (netip.Prefix, error) {
	path := filepath.Join(stateDir, ulaFile)
	b, err := os.ReadFile(path)
	if err == nil {
		p, err := netip.ParsePrefix(strings.TrimSpace(string(b)))
		if err != nil || p.Bits() != 64 || !p.Addr().Is6() || p.Addr().As16()[0] != 0xfd {
			return netip.Prefix{}, fmt.Errorf("ra: %s: not a ULA /64: %q", path, strings.TrimSpace(string(b)))
		}
		return p, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return netip.Prefix{}, fmt.Errorf("ra: %w", err)
	}
	var a [16]byte
	a[0] = 0xfd
	rand.Read(a[1:6]) // never fails (crypto/rand)
	p := netip.PrefixFrom(netip.AddrFrom16(a), 64)
	if err := journal.WriteFile(path, []byte(p.String()+"\n")); err != nil {
		return netip.Prefix{}, fmt.Errorf("ra: %w", err)
	}
	return p, nil
}
