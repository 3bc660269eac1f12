package nat44

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// The JSON of mappings and pinholes (the API, the state file) writes
// lifetimes in whole seconds and nonces in hex, as a person reads them;
// in Go they are a time.Duration and a byte array.

// MarshalText writes the nonce in hex.
func (n Nonce) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(n[:])), nil }

// UnmarshalText reads what MarshalText writes.
func (n *Nonce) UnmarshalText(b []byte) error {
	var v Nonce
	if hex.DecodedLen(len(b)) != len(v) {
		return fmt.Errorf("nat44: nonce %q is not 12 bytes in hex", b)
	}
	if _, err := hex.Decode(v[:], b); err != nil {
		return fmt.Errorf("nat44: nonce %q: %w", b, err)
	}
	*n = v
	return nil
}

// seconds is a lifetime in JSON.
type seconds int64

func toSeconds(d time.Duration) seconds { return seconds(d / time.Second) }

func (s seconds) duration() (time.Duration, error) {
	if s < 0 || s > 1<<31 {
		return 0, fmt.Errorf("nat44: lifetime %d s out of range", s)
	}
	return time.Duration(s) * time.Second, nil
}

type plainMapping Mapping

// mappingJSON shadows Lifetime: the shallower field wins in encoding/json.
type mappingJSON struct {
	plainMapping
	Lifetime seconds `json:"lifetime,omitempty"`
}

// MarshalJSON writes the lifetime in seconds.
func (m Mapping) MarshalJSON() ([]byte, error) {
	return json.Marshal(mappingJSON{plainMapping(m), toSeconds(m.Lifetime)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Mapping) UnmarshalJSON(b []byte) error {
	var v mappingJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	d, err := v.Lifetime.duration()
	if err != nil {
		return err
	}
	*m = Mapping(v.plainMapping)
	m.Lifetime = d
	return nil
}

type plainPinhole Pinhole

type pinholeJSON struct {
	plainPinhole
	Lifetime seconds `json:"lifetime,omitempty"`
}

// MarshalJSON writes the lifetime in seconds.
func (p Pinhole) MarshalJSON() ([]byte, error) {
	return json.Marshal(pinholeJSON{plainPinhole(p), toSeconds(p.Lifetime)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Pinhole) UnmarshalJSON(b []byte) error {
	var v pinholeJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	d, err := v.Lifetime.duration()
	if err != nil {
		return err
	}
	*p = Pinhole(v.plainPinhole)
	p.Lifetime = d
	return nil
}
