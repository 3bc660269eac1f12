package pd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"gateway/internal/journal"
)

// stateFile is the client's file in Config.StateDir.
const stateFile = "dhcp6-pd.json"

// state is what survives a restart: the DUID, so that the gateway stays
// the same client to the ISP, the lease, to Rebind it after a restart
// (RFC 8415 section 18.2.12), and the last prefix, asked for again as a
// hint once the lease is gone.
type state struct {
	DUID  []byte       `json:"duid"`
	Lease *Lease       `json:"lease,omitempty"`
	Hint  netip.Prefix `json:"hint,omitzero"`
}

func loadState(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("pd: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("pd: %s: %w", filepath.Join(dir, stateFile), err)
	}
	return st, nil
}

// saveState writes st durably (fsync, rename): once per new lease or
// renewal, that is once per T1 (hours at an ISP), no flash concern.
func saveState(dir string, st state) error {
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("pd: %w", err)
	}
	if err := journal.WriteFile(filepath.Join(dir, stateFile), append(b, '\n')); err != nil {
		return fmt.Errorf("pd: %w", err)
	}
	return nil
}
