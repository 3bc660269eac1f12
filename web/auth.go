package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gateway/internal/clock"
)

// PasswordFile is the file in the state directory that keeps the panel's
// password hash (mode 0600).
const PasswordFile = "panel-password"

// AuthConfig configures the panel's authentication. Zero values are
// documented per field.
type AuthConfig struct {
	// StateDir keeps PasswordFile; "" keeps the password in memory only.
	StateDir string
	// PasswordHash (the config's "option password_hash", an argon2id
	// PHC string) or Password (the config's "option password", hashed
	// here) set the password when the file has none, and set it again
	// whenever they change in the config: that is how a forgotten
	// password is reset. A password changed in the panel is kept across
	// restarts while the config's stays the same. Empty: the first
	// visitor sets it (setup).
	PasswordHash string
	Password     string
	// IdleTimeout ends a session unused this long; zero is 30 minutes.
	// MaxAge ends any session this long after sign-in; zero is 12 hours.
	IdleTimeout, MaxAge time.Duration
	Clock               clock.Clock  // nil is the real clock
	Logger              *slog.Logger // nil discards
}

// Auth is the panel's password, sessions and login rate limit.
type Auth struct {
	cfg   AuthConfig
	clock clock.Clock
	log   *slog.Logger

	mu       sync.Mutex // guards hash, seed, sessions, tries
	hash     string     // the password's hash; "" before setup
	seed     string     // the hash the config gave (or made from it), if any
	sessions map[[32]byte]*session
	tries    map[netip.Prefix]*tries
}

// session is one signed-in browser. Its ID (in the cookie) is kept only
// as its SHA-256, so that looking it up leaks nothing by timing.
type session struct {
	csrf    string
	created time.Time
	used    time.Time
}

// Limits of the tables a LAN client can grow.
const (
	maxSessions = 64
	maxTries    = 4096
)

// NewAuth loads the password from the state directory and the config.
func NewAuth(cfg AuthConfig) (*Auth, error) {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 12 * time.Hour
	}
	a := &Auth{cfg: cfg, clock: clock.Or(cfg.Clock), log: cfg.Logger, sessions: map[[32]byte]*session{}, tries: map[netip.Prefix]*tries{}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	cur, seed, err := a.load()
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.PasswordHash != "":
		if err := CheckHash(cfg.PasswordHash); err != nil {
			return nil, err
		}
		if seed != cfg.PasswordHash {
			cur, seed = cfg.PasswordHash, cfg.PasswordHash
			if err := a.store(cur, seed); err != nil {
				return nil, err
			}
			a.log.Info("panel password set from the config's password_hash")
		}
	case cfg.Password != "":
		if seed == "" || !VerifyPassword(seed, cfg.Password) {
			h, err := HashPassword(cfg.Password)
			if err != nil {
				return nil, err
			}
			cur, seed = h, h
			if err := a.store(cur, seed); err != nil {
				return nil, err
			}
			a.log.Info("panel password set from the config's password")
		}
	}
	a.hash, a.seed = cur, seed
	return a, nil
}

func (a *Auth) path() string { return filepath.Join(a.cfg.StateDir, PasswordFile) }

// load reads PasswordFile: the hash on its first line, and "seed HASH"
// (what the config gave) on the second.
func (a *Auth) load() (cur, seed string, err error) {
	if a.cfg.StateDir == "" {
		return "", "", nil
	}
	b, err := os.ReadFile(a.path())
	if errors.Is(err, os.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("web: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	cur = strings.TrimSpace(lines[0])
	if len(lines) > 1 {
		seed, _ = strings.CutPrefix(strings.TrimSpace(lines[1]), "seed ")
	}
	if err := CheckHash(cur); err != nil {
		return "", "", fmt.Errorf("web: %s: %w", a.path(), err)
	}
	return cur, seed, nil
}

// store writes PasswordFile durably (temporary file, fsync, rename,
// fsync of the folder) with mode 0600.
func (a *Auth) store(cur, seed string) error {
	if a.cfg.StateDir == "" {
		return nil
	}
	data := cur + "\n"
	if seed != "" {
		data += "seed " + seed + "\n"
	}
	return writeDurable(a.path(), []byte(data), 0o600)
}

// PasswordSet reports whether a password exists (setup is over).
func (a *Auth) PasswordSet() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hash != ""
}

// ErrPasswordSet refuses a setup once a password exists.
var ErrPasswordSet = errors.New("a password is already set")

// ErrWrongPassword is a failed check of the password.
var ErrWrongPassword = errors.New("wrong password")

func checkNew(pw string) error {
	if len(pw) < MinPasswordLen {
		return fmt.Errorf("the password must have at least %d characters", MinPasswordLen)
	}
	if len(pw) > MaxPasswordLen {
		return fmt.Errorf("the password must have at most %d bytes", MaxPasswordLen)
	}
	return nil
}

// Setup sets the first password; ErrPasswordSet once one exists.
func (a *Auth) Setup(pw string) error {
	if err := checkNew(pw); err != nil {
		return err
	}
	if a.PasswordSet() {
		return ErrPasswordSet
	}
	h, err := HashPassword(pw)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hash != "" { // set by another request while hashing
		return ErrPasswordSet
	}
	if err := a.store(h, a.seed); err != nil {
		return err
	}
	a.hash = h
	a.log.Info("panel password set (first run)")
	return nil
}

// Check reports whether pw is the password.
func (a *Auth) Check(pw string) bool {
	a.mu.Lock()
	h := a.hash
	a.mu.Unlock()
	return h != "" && VerifyPassword(h, pw)
}

// Change replaces the password (old must be right) and ends every
// session but keep's.
func (a *Auth) Change(old, pw, keep string) error {
	if !a.Check(old) {
		return ErrWrongPassword
	}
	if err := checkNew(pw); err != nil {
		return err
	}
	h, err := HashPassword(pw)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.store(h, a.seed); err != nil {
		return err
	}
	a.hash = h
	k := sessionKey(keep)
	for id := range a.sessions {
		if id != k {
			delete(a.sessions, id)
		}
	}
	a.log.Info("panel password changed; other sessions ended")
	return nil
}

func sessionKey(id string) [32]byte { return sha256.Sum256([]byte(id)) }

func randomToken() string {
	b := make([]byte, 32) // 256 bits
	rand.Read(b)          // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewSession starts a session; it returns its ID (for the cookie) and its
// CSRF token. The oldest session makes room when there are too many.
func (a *Auth) NewSession() (id, csrf string) {
	id, csrf = randomToken(), randomToken()
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked(now)
	if len(a.sessions) >= maxSessions {
		var oldest [32]byte
		first := true
		for k, s := range a.sessions {
			if first || s.used.Before(a.sessions[oldest].used) {
				oldest, first = k, false
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[sessionKey(id)] = &session{csrf: csrf, created: now, used: now}
	return id, csrf
}

// Session returns the CSRF token of session id and marks it used; false
// when there is no such session or it has expired.
func (a *Auth) Session(id string) (csrf string, ok bool) {
	if id == "" {
		return "", false
	}
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	k := sessionKey(id)
	s, ok := a.sessions[k]
	if !ok {
		return "", false
	}
	if a.expired(s, now) {
		delete(a.sessions, k)
		return "", false
	}
	s.used = now
	return s.csrf, true
}

// EndSession ends session id.
func (a *Auth) EndSession(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.sessions, sessionKey(id))
}

func (a *Auth) expired(s *session, now time.Time) bool {
	return now.Sub(s.used) >= a.cfg.IdleTimeout || now.Sub(s.created) >= a.cfg.MaxAge
}

func (a *Auth) expireLocked(now time.Time) {
	for k, s := range a.sessions {
		if a.expired(s, now) {
			delete(a.sessions, k)
		}
	}
}

// tries counts the password attempts of one client.
type tries struct {
	n    int       // attempts since the last success
	next time.Time // no attempt before this
	last time.Time
}

// Login rate limit: freeTries attempts, then a wait that starts at
// firstWait and doubles with each attempt up to maxWait. A client is its
// IPv4 address or its IPv6 /64 (a host picks any address of its /64).
const (
	freeTries = 5
	firstWait = time.Second
	maxWait   = 15 * time.Minute
	triesIdle = time.Hour // a client's count is forgotten after this
)

func clientKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.WithZone("").Prefix(64)
	return p
}

// Attempt asks whether client may try a password now, and counts the try
// as failed until Succeeded says otherwise, so that parallel requests
// cannot slip past the count. When it may not, wait says for how long.
func (a *Auth) Attempt(client netip.Addr) (wait time.Duration, ok bool) {
	now := a.clock.Now()
	k := clientKey(client)
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tries[k]
	if t == nil {
		if len(a.tries) >= maxTries {
			a.pruneTriesLocked(now)
		}
		t = &tries{}
		a.tries[k] = t
	}
	if now.Before(t.next) {
		return t.next.Sub(now), false
	}
	t.n++
	t.last = now
	if t.n >= freeTries {
		w := maxWait
		if s := t.n - freeTries; s < 20 {
			w = min(firstWait<<s, maxWait)
		}
		t.next = now.Add(w)
	}
	return 0, true
}

// Succeeded clears client's count after a right password.
func (a *Auth) Succeeded(client netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.tries, clientKey(client))
}

// pruneTriesLocked forgets idle clients, else the one seen longest ago.
func (a *Auth) pruneTriesLocked(now time.Time) {
	var oldest netip.Prefix
	for k, t := range a.tries {
		if now.Sub(t.last) > triesIdle && !now.Before(t.next) {
			delete(a.tries, k)
		} else if o := a.tries[oldest]; o == nil || t.last.Before(o.last) {
			oldest = k
		}
	}
	if len(a.tries) >= maxTries {
		delete(a.tries, oldest)
	}
}

// csrfEqual compares tokens in constant time.
func csrfEqual(a, b string) bool {
	return len(a) > 0 && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// writeDurable replaces name with data: a temporary file of mode perm,
// fsynced, renamed over name, and the folder fsynced.
func writeDurable(name string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	tmp := name + ".tmp"
	os.Remove(tmp) // one left by a crash may have another mode
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("web: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
