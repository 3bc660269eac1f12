package wire

import (
	"crypto/hmac"
	"crypto/sha1"
	"errors"
)

// AuthValueLen is the length of an authentication value made by
// AuthValue: an HMAC-SHA1.
const AuthValueLen = sha1.Size

// AuthValue is the authentication value of p (RFC 4380 section 5.1.1,
// the default algorithm, HMAC-SHA1 keyed with the secret the client
// shares with its server) over the client identifier, the nonce, the
// confirmation byte, the origin indication if p has one, and the IPv6
// packet. p.Auth must be set; its AuthValue is not covered.
func AuthValue(secret []byte, p Packet) ([]byte, error) {
	if p.Auth == nil {
		return nil, errors.New("teredo: no authentication header to authenticate")
	}
	rest, err := Packet{Origin: p.Origin, IPv6: p.IPv6}.Append(nil)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha1.New, secret)
	m.Write(p.Auth.ClientID)
	m.Write(p.Auth.Nonce[:])
	m.Write([]byte{p.Auth.Confirmation})
	m.Write(rest)
	return m.Sum(nil), nil
}

// Authentic reports whether p carries an authentication header whose
// value AuthValue computes with secret.
func Authentic(secret []byte, p Packet) bool {
	if p.Auth == nil || len(p.Auth.AuthValue) != AuthValueLen {
		return false
	}
	v, err := AuthValue(secret, p)
	return err == nil && hmac.Equal(v, p.Auth.AuthValue)
}
