package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// The argon2id parameters of new hashes (RFC 9106). A router's CPU is
// slow and its memory small: 4 MiB and 3 passes take 8 ms on a 2020s
// x86-64 core (SSE), 17 ms with the pure-Go code in 32-bit mode
// (GOARCH=386, as on a router), so about 300 ms on an in-order 32-bit
// MIPS at 880 MHz; 19 MiB and 2 passes (OWASP's first choice) would take
// over a second there and hold 19 MiB of a 64 MiB router. Guessing is
// bounded by the login rate limit; the hash only slows down whoever has
// stolen the file. A stored hash keeps its own parameters, so they can
// be raised later without a reset.
const (
	hashMemory  = 4 << 10 // KiB
	hashTime    = 3
	hashThreads = 1
	hashSaltLen = 16
	hashKeyLen  = 32
)

// Bounds on the parameters of a hash given in the config, so that a
// mistyped one cannot take the router's memory or minutes per login.
const (
	maxHashMemory = 64 << 10 // KiB
	maxHashTime   = 16
)

// MaxPasswordLen bounds a password (bytes); MinPasswordLen is the
// shortest a new one may be.
const (
	MaxPasswordLen = 1024
	MinPasswordLen = 8
)

// ErrBadHash says a password hash is not a PHC string of argon2id.
var ErrBadHash = errors.New("web: not an argon2id hash ($argon2id$v=19$m=..,t=..,p=..$salt$hash)")

// hashing lets one argon2 run at a time: each holds its memory, and
// parallel logins must not add them up.
var hashing sync.Mutex

// idKey runs argon2id, one at a time, and gives its memory back to the
// system at once: a router has little, and a sign-in is rare.
func idKey(pw, salt []byte, t, m uint32, p uint8, n uint32) []byte {
	hashing.Lock()
	defer hashing.Unlock()
	key := argon2.IDKey(pw, salt, t, m, p, n)
	debug.FreeOSMemory()
	return key
}

// HashPassword returns the argon2id hash of pw in the PHC string format
// ("$argon2id$v=19$m=4096,t=3,p=1$salt$hash", unpadded base64).
func HashPassword(pw string) (string, error) {
	salt := make([]byte, hashSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("web: %w", err)
	}
	key := idKey([]byte(pw), salt, hashTime, hashMemory, hashThreads, hashKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, hashMemory, hashTime, hashThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

type phc struct {
	m, t      uint32
	p         uint8
	salt, key []byte
}

// CheckHash reports whether s is an argon2id hash that VerifyPassword
// takes.
func CheckHash(s string) error {
	_, err := parseHash(s)
	return err
}

func parseHash(s string) (phc, error) {
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return phc{}, ErrBadHash
	}
	var h phc
	var p uint32
	params := strings.Split(f[3], ",")
	if len(params) != 3 {
		return phc{}, ErrBadHash
	}
	for i, dst := range []*uint32{&h.m, &h.t, &p} {
		v, ok := strings.CutPrefix(params[i], "mtp"[i:i+1]+"=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return phc{}, ErrBadHash
		}
		*dst = uint32(n)
	}
	if h.m < 8*p || h.m > maxHashMemory || h.t < 1 || h.t > maxHashTime || p < 1 || p > 16 {
		return phc{}, fmt.Errorf("%w: parameters m=%d,t=%d,p=%d out of range (m at most %d KiB, t at most %d)", ErrBadHash, h.m, h.t, p, maxHashMemory, maxHashTime)
	}
	h.p = uint8(p)
	var err1, err2 error
	h.salt, err1 = base64.RawStdEncoding.DecodeString(f[4])
	h.key, err2 = base64.RawStdEncoding.DecodeString(f[5])
	if err1 != nil || err2 != nil || len(h.salt) < 8 || len(h.key) < 16 || len(h.key) > 64 {
		return phc{}, ErrBadHash
	}
	return h, nil
}

// VerifyPassword reports whether pw has the hash encoded; the hashes
// are compared in constant time.
func VerifyPassword(encoded, pw string) bool {
	h, err := parseHash(encoded)
	if err != nil || len(pw) > MaxPasswordLen {
		return false
	}
	key := idKey([]byte(pw), h.salt, h.t, h.m, h.p, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1
}
