package dhcp

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
)

// reservationJSON writes the MAC as people write it, not as base64.
type reservationJSON struct {
	MAC      string     `json:"mac"`
	Addr     netip.Addr `json:"addr"`
	Hostname string     `json:"hostname,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (r Reservation) MarshalJSON() ([]byte, error) {
	return json.Marshal(reservationJSON{r.MAC.String(), r.Addr, r.Hostname})
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *Reservation) UnmarshalJSON(b []byte) error {
	var j reservationJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	mac, err := net.ParseMAC(j.MAC)
	if err != nil || len(mac) != 6 {
		return fmt.Errorf("dhcp: reservation mac %q is not an Ethernet address", j.MAC)
	}
	*r = Reservation{MAC: mac, Addr: j.Addr, Hostname: j.Hostname}
	return nil
}
