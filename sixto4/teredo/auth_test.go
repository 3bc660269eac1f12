package teredo

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"gateway/internal/leakcheck"
)

// TestQualifyAuthenticated: with a secret, the RS carries the client
// identifier and an authentication value the server checks, and only an
// RA authenticated with the same secret is taken (RFC 4380 section
// 5.1.1); the fake server plays the server's side, as miredo-server
// does not implement it.
func TestQualifyAuthenticated(t *testing.T) {
	id, secret := []byte("gateway-1"), []byte("shared secret")
	for _, tc := range []struct {
		name               string
		client             []byte // the client's secret
		server, serverSign []byte
		wantErr            error
	}{
		{name: "both know the secret", client: secret, server: secret},
		{name: "client with another secret: the server ignores it", client: []byte("guess"), server: secret, wantErr: ErrNoAnswer},
		{name: "server signs with another secret: its RA is ignored", client: secret, server: secret, serverSign: []byte("impostor"), wantErr: ErrNoAnswer},
		{name: "server does not authenticate its RA", client: secret, wantErr: ErrNoAnswer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			s := newFakeServer(t)
			s.set(func() { s.secret, s.raSecret = tc.server, tc.serverSign })
			q, err := Qualifier{Port: s.port, Timeout: 100 * time.Millisecond, Attempts: 2, ClientID: id, Secret: tc.client}.Qualify(context.Background(), clientConn(t), s.primary)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Qualify = %+v, %v; want %v", q, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s.set(func() {
				if len(s.ids) == 0 || !bytes.Equal(s.ids[0], id) {
					t.Errorf("server saw client identifiers %q, want %q", s.ids, id)
				}
			})
		})
	}
}
