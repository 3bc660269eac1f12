// Package gena parses and marshals the eventing messages of UPnP (UDA 2.0
// §4, GENA): the SUBSCRIBE and UNSUBSCRIBE headers (CALLBACK, NT, SID,
// TIMEOUT) and the NOTIFY property set. It owns no sockets.
package gena

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gateway/upnp/soap"
)

var (
	// ErrMalformed wraps every parse failure; a server answers 400 or,
	// for a missing or bad CALLBACK or NT, 412 (ErrPrecondition).
	ErrMalformed = errors.New("gena: malformed request")
	// ErrPrecondition: CALLBACK missing or not http URLs, or NT not
	// "upnp:event", or SID unknown (UDA 2.0 §4.1.2: 412 Precondition
	// Failed).
	ErrPrecondition = fmt.Errorf("%w: precondition failed", ErrMalformed)
)

// Limits of a request.
const (
	MaxCallbacks = 4
	MaxURL       = 256
	// Infinite is TIMEOUT "infinite", which UDA 2.0 §4.1.2 deprecates; a
	// server grants its own maximum instead.
	Infinite time.Duration = -1
)

// Kind says what a SUBSCRIBE or UNSUBSCRIBE asks.
type Kind int

const (
	Subscribe   Kind = iota + 1 // SUBSCRIBE with CALLBACK and NT
	Renew                       // SUBSCRIBE with SID
	Unsubscribe                 // UNSUBSCRIBE with SID
)

// Request is a SUBSCRIBE or UNSUBSCRIBE's headers.
type Request struct {
	Kind      Kind
	Callbacks []string      // Subscribe: http URLs in order of preference
	SID       string        // Renew, Unsubscribe: "uuid:…"
	Timeout   time.Duration // requested; 0 when absent, Infinite for "infinite"
	// StateVars is STATEVAR (UDA 2.0 §4.1.2), the variables asked for;
	// nil means all.
	StateVars []string
}

// ParseRequest reads method's headers h.
func ParseRequest(method string, h textproto.MIMEHeader) (Request, error) {
	var r Request
	sid, cb, nt := h.Get("SID"), h.Get("CALLBACK"), h.Get("NT")
	switch {
	case method == "UNSUBSCRIBE":
		r.Kind = Unsubscribe
	case method != "SUBSCRIBE":
		return r, fmt.Errorf("%w: method %q", ErrMalformed, method)
	case sid != "":
		r.Kind = Renew
	default:
		r.Kind = Subscribe
	}
	if r.Kind != Subscribe {
		if cb != "" || nt != "" {
			return Request{}, fmt.Errorf("%w: SID with CALLBACK or NT", ErrMalformed)
		}
		if !validSID(sid) {
			return Request{}, fmt.Errorf("%w: SID %q", ErrPrecondition, sid)
		}
		r.SID = sid
	} else {
		if nt != "upnp:event" {
			return Request{}, fmt.Errorf("%w: NT %q", ErrPrecondition, nt)
		}
		var err error
		if r.Callbacks, err = ParseCallback(cb); err != nil {
			return Request{}, err
		}
	}
	if r.Kind != Unsubscribe {
		if t := h.Get("TIMEOUT"); t != "" {
			d, err := ParseTimeout(t)
			if err != nil {
				return Request{}, err
			}
			r.Timeout = d
		}
		if sv := h.Get("STATEVAR"); sv != "" && r.Kind == Subscribe {
			for _, v := range strings.Split(sv, ",") {
				v = strings.TrimSpace(v)
				if v == "" || !validToken(v) {
					return Request{}, fmt.Errorf("%w: STATEVAR %q", ErrMalformed, sv)
				}
				r.StateVars = append(r.StateVars, v)
			}
		}
	}
	return r, nil
}

// Header is r as headers (for clients and tests); it refuses what
// ParseRequest would refuse.
func (r Request) Header() (method string, h textproto.MIMEHeader, err error) {
	h = textproto.MIMEHeader{}
	method = "SUBSCRIBE"
	switch r.Kind {
	case Subscribe:
		cb, err := AppendCallback(nil, r.Callbacks)
		if err != nil {
			return "", nil, err
		}
		h.Set("CALLBACK", string(cb))
		h.Set("NT", "upnp:event")
		if len(r.StateVars) > 0 {
			for _, v := range r.StateVars {
				if !validToken(v) || strings.Contains(v, ",") {
					return "", nil, fmt.Errorf("%w: STATEVAR %q", ErrMalformed, v)
				}
			}
			h.Set("STATEVAR", strings.Join(r.StateVars, ","))
		}
	case Renew, Unsubscribe:
		if !validSID(r.SID) {
			return "", nil, fmt.Errorf("%w: SID %q", ErrMalformed, r.SID)
		}
		h.Set("SID", r.SID)
		if r.Kind == Unsubscribe {
			method = "UNSUBSCRIBE"
		}
	default:
		return "", nil, fmt.Errorf("%w: kind %d", ErrMalformed, r.Kind)
	}
	if r.Kind != Unsubscribe && r.Timeout != 0 {
		t, err := FormatTimeout(r.Timeout)
		if err != nil {
			return "", nil, err
		}
		h.Set("TIMEOUT", t)
	}
	return method, h, nil
}

// ParseCallback reads CALLBACK: one or more "<http://host:port/path>".
func ParseCallback(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	var urls []string
	for s != "" {
		if s[0] != '<' {
			return nil, fmt.Errorf("%w: CALLBACK %q", ErrPrecondition, s)
		}
		end := strings.IndexByte(s, '>')
		if end < 0 {
			return nil, fmt.Errorf("%w: CALLBACK without '>'", ErrPrecondition)
		}
		u := s[1:end]
		if err := checkURL(u); err != nil {
			return nil, err
		}
		if len(urls) == MaxCallbacks {
			return nil, fmt.Errorf("%w: more than %d CALLBACK URLs", ErrPrecondition, MaxCallbacks)
		}
		urls = append(urls, u)
		s = strings.TrimLeft(s[end+1:], " \t")
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("%w: no CALLBACK", ErrPrecondition)
	}
	return urls, nil
}

// AppendCallback marshals CALLBACK.
func AppendCallback(dst []byte, urls []string) ([]byte, error) {
	if len(urls) == 0 || len(urls) > MaxCallbacks {
		return dst, fmt.Errorf("%w: %d CALLBACK URLs", ErrPrecondition, len(urls))
	}
	for _, u := range urls {
		if err := checkURL(u); err != nil {
			return dst, err
		}
		dst = append(dst, '<')
		dst = append(dst, u...)
		dst = append(dst, '>')
	}
	return dst, nil
}

func checkURL(s string) error {
	if len(s) > MaxURL || strings.ContainsAny(s, "<> \t\r\n") {
		return fmt.Errorf("%w: CALLBACK URL %q", ErrPrecondition, s)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil {
		return fmt.Errorf("%w: CALLBACK URL %q is not an http URL", ErrPrecondition, s)
	}
	return nil
}

// ParseTimeout reads TIMEOUT: "Second-N" or "infinite".
func ParseTimeout(s string) (time.Duration, error) {
	if strings.EqualFold(s, "infinite") || strings.EqualFold(s, "Second-infinite") {
		return Infinite, nil
	}
	n, ok := strings.CutPrefix(s, "Second-")
	if !ok {
		n, ok = strings.CutPrefix(s, "second-")
	}
	v, err := strconv.ParseUint(n, 10, 31)
	if !ok || err != nil || v == 0 || n[0] == '+' {
		return 0, fmt.Errorf("%w: TIMEOUT %q", ErrMalformed, s)
	}
	return time.Duration(v) * time.Second, nil
}

// FormatTimeout is TIMEOUT for d, whole seconds, at least 1.
func FormatTimeout(d time.Duration) (string, error) {
	if d == Infinite {
		return "infinite", nil
	}
	if d < time.Second || d%time.Second != 0 || d/time.Second >= 1<<31 {
		return "", fmt.Errorf("%w: timeout %v", ErrMalformed, d)
	}
	return "Second-" + strconv.FormatInt(int64(d/time.Second), 10), nil
}

func validSID(s string) bool {
	return strings.HasPrefix(s, "uuid:") && len(s) > 5 && len(s) <= 128 && validToken(s)
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return s != ""
}

// Property is one evented state variable and its value.
type Property struct{ Name, Value string }

const eventNS = "urn:schemas-upnp-org:event-1-0"

// AppendPropertySet marshals a NOTIFY body (UDA 2.0 §4.3.2).
func AppendPropertySet(dst []byte, props []Property) ([]byte, error) {
	dst = append(dst, `<?xml version="1.0"?>`+"\r\n"+`<e:propertyset xmlns:e="`+eventNS+`">`...)
	for _, p := range props {
		if !soap.ValidName(p.Name) || !utf8.ValidString(p.Value) {
			return dst, fmt.Errorf("%w: property %q", ErrMalformed, p.Name)
		}
		for _, r := range p.Value {
			if !(r == 0x09 || r == 0x0A || r == 0x0D || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || r >= 0x10000) {
				return dst, fmt.Errorf("%w: character %U in %s", ErrMalformed, r, p.Name)
			}
		}
		dst = fmt.Appendf(dst, "<e:property><%s>", p.Name)
		var b bytes.Buffer
		xml.EscapeText(&b, []byte(p.Value))
		dst = append(dst, b.Bytes()...)
		dst = fmt.Appendf(dst, "</%s></e:property>", p.Name)
	}
	return append(dst, "</e:propertyset>\r\n"...), nil
}

// ParsePropertySet reads a NOTIFY body.
func ParsePropertySet(b []byte) ([]Property, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var props []Property
	depth := 0
	var cur *Property
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if t.Name.Local != "propertyset" {
					return nil, fmt.Errorf("%w: root %q", ErrMalformed, t.Name.Local)
				}
			case 2:
				if t.Name.Local != "property" {
					return nil, fmt.Errorf("%w: element %q", ErrMalformed, t.Name.Local)
				}
			case 3:
				if !soap.ValidName(t.Name.Local) {
					return nil, fmt.Errorf("%w: property %q", ErrMalformed, t.Name.Local)
				}
				props = append(props, Property{Name: t.Name.Local})
				cur = &props[len(props)-1]
			default:
				return nil, fmt.Errorf("%w: nested property", ErrMalformed)
			}
		case xml.EndElement:
			if depth == 3 {
				cur = nil
			}
			depth--
		case xml.CharData:
			if depth == 3 && cur != nil {
				cur.Value += string(t)
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%w: unclosed", ErrMalformed)
	}
	return props, nil
}
