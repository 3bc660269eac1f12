package main

import (
	"strings"
	"testing"
)

// A relay on an address that cannot be 6to4's is refused before anything
// on the host changes (ServeRelay validates before it turns on forwarding).
func TestRelay6to4RefusesBadAddresses(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "want -addr"},
		{[]string{"-addr", "not-an-address"}, "want -addr"},
		{[]string{"-addr", "10.0.0.1"}, "private"},
		{[]string{"-addr", "100.64.1.1"}, "shared"},
		{[]string{"-addr", "192.0.2.1"}, "documentation"},
		{[]string{"-addr", "2001:db8::1"}, "not an IPv4"},
		{[]string{"-addr", "8.8.8.8", "extra"}, "want -addr"},
	} {
		err := relay6to4Cmd(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("relay6to4 %q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}
