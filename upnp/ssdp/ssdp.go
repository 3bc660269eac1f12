// Package ssdp parses and marshals SSDP messages (UPnP Device Architecture
// 2.0 §1: discovery): HTTP over UDP, a start line and headers, no body.
// It owns no sockets.
package ssdp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrMalformed wraps every parse failure.
var ErrMalformed = errors.New("ssdp: malformed message")

// Multicast group and port (UDA 2.0 §1.1.2).
const (
	Group = "239.255.255.250"
	Port  = 1900
	// GroupLinkLocal6 and GroupSiteLocal6 are the IPv6 groups (UDA 2.0
	// Annex A.1).
	GroupLinkLocal6 = "ff02::c"
	GroupSiteLocal6 = "ff05::c"
	// MaxSize bounds an SSDP message; UDA 2.0 §1.1.2 recommends fitting a
	// message in one unfragmented datagram.
	MaxSize = 4096
)

// Header is one header line. Names keep their spelling; lookups ignore case.
type Header struct{ Name, Value string }

// Message is one SSDP message: a request (Method and Target, "M-SEARCH *"
// or "NOTIFY *") or, when Method is empty, a response ("HTTP/1.1 200 OK").
type Message struct {
	Method  string // M-SEARCH, NOTIFY; empty for a response
	Target  string // request target, "*"
	Status  int    // response status code
	Reason  string // response reason phrase
	Headers []Header
}

// Get returns the first header named name (any case), trimmed.
func (m Message) Get(name string) string {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Parse reads one SSDP message. Header values are trimmed of surrounding
// white space (RFC 9112 §5: optional white space around the value is not
// part of it); header lines without a colon are refused.
func Parse(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxSize {
		return m, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	lines := strings.Split(string(b), "\n")
	start := strings.TrimSuffix(lines[0], "\r")
	f := strings.SplitN(start, " ", 3)
	if len(f) != 3 {
		return m, fmt.Errorf("%w: start line %q", ErrMalformed, start)
	}
	if f[0] == "HTTP/1.1" || f[0] == "HTTP/1.0" {
		code, err := strconv.Atoi(f[1])
		if err != nil || code < 100 || code > 999 || len(f[1]) != 3 {
			return m, fmt.Errorf("%w: status %q", ErrMalformed, f[1])
		}
		m.Status, m.Reason = code, f[2]
		if !validText(m.Reason) {
			return m, fmt.Errorf("%w: reason phrase", ErrMalformed)
		}
	} else {
		if f[2] != "HTTP/1.1" && f[2] != "HTTP/1.0" {
			return m, fmt.Errorf("%w: version %q", ErrMalformed, f[2])
		}
		// A method that starts like a version would read back as a
		// status line: Append refuses it, so Parse does too.
		if !validToken(f[0]) || strings.HasPrefix(f[0], "HTTP/") || f[1] == "" || !validToken(f[1]) {
			return m, fmt.Errorf("%w: request line %q", ErrMalformed, start)
		}
		m.Method, m.Target = f[0], f[1]
	}
	ended := false
	for _, l := range lines[1:] {
		l = strings.TrimSuffix(l, "\r")
		if ended {
			if l != "" {
				return Message{}, fmt.Errorf("%w: data after the headers", ErrMalformed)
			}
			continue
		}
		if l == "" {
			ended = true
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || !validToken(name) {
			return Message{}, fmt.Errorf("%w: header line %q", ErrMalformed, l)
		}
		value = strings.Trim(value, " \t")
		if !validText(value) {
			return Message{}, fmt.Errorf("%w: header %s", ErrMalformed, name)
		}
		m.Headers = append(m.Headers, Header{name, value})
	}
	return m, nil
}

// Append marshals m; it refuses what Parse would refuse.
func (m Message) Append(dst []byte) ([]byte, error) {
	if m.Method != "" {
		if !validToken(m.Method) || strings.HasPrefix(m.Method, "HTTP/") || !validToken(m.Target) {
			return dst, fmt.Errorf("%w: request line", ErrMalformed)
		}
		dst = fmt.Appendf(dst, "%s %s HTTP/1.1\r\n", m.Method, m.Target)
	} else {
		if m.Status < 100 || m.Status > 999 || !validText(m.Reason) {
			return dst, fmt.Errorf("%w: status line", ErrMalformed)
		}
		dst = fmt.Appendf(dst, "HTTP/1.1 %d %s\r\n", m.Status, m.Reason)
	}
	for _, h := range m.Headers {
		if !validToken(h.Name) || !validText(h.Value) || strings.Trim(h.Value, " \t") != h.Value {
			return dst, fmt.Errorf("%w: header %q", ErrMalformed, h.Name)
		}
		dst = fmt.Appendf(dst, "%s: %s\r\n", h.Name, h.Value)
	}
	dst = append(dst, "\r\n"...)
	if len(dst) > MaxSize {
		return dst, fmt.Errorf("%w: %d bytes", ErrMalformed, len(dst))
	}
	return dst, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func validText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Search is an M-SEARCH request (UDA 2.0 §1.3.2).
type Search struct {
	ST        string        // search target
	MX        time.Duration // maximum wait; 0 for a unicast search
	UserAgent string
	Multicast bool // MAN "ssdp:discover" to the multicast address (HOST)
}

// ParseSearch reads an M-SEARCH. MX is required for a multicast search;
// values over 5 s are capped to 5 s by the caller as UDA 2.0 §1.3.3 asks
// ("device responses should be delayed a random duration between 0 and
// this many seconds"; control points "should" keep it at most 5).
func ParseSearch(b []byte) (Search, error) {
	m, err := Parse(b)
	if err != nil {
		return Search{}, err
	}
	return SearchOf(m)
}

// SearchOf reads an M-SEARCH from a parsed message.
func SearchOf(m Message) (Search, error) {
	if m.Method != "M-SEARCH" || m.Target != "*" {
		return Search{}, fmt.Errorf("%w: not an M-SEARCH", ErrMalformed)
	}
	if strings.Trim(m.Get("MAN"), `"`) != "ssdp:discover" {
		return Search{}, fmt.Errorf("%w: MAN is not \"ssdp:discover\"", ErrMalformed)
	}
	s := Search{ST: m.Get("ST"), UserAgent: m.Get("USER-AGENT")}
	if s.ST == "" {
		return Search{}, fmt.Errorf("%w: no ST", ErrMalformed)
	}
	s.Multicast = isGroupHost(m.Get("HOST"))
	if mx := m.Get("MX"); mx != "" {
		n, err := strconv.Atoi(mx)
		if err != nil || n < 0 || n > 3600 {
			return Search{}, fmt.Errorf("%w: MX %q", ErrMalformed, mx)
		}
		s.MX = time.Duration(n) * time.Second
	} else if s.Multicast {
		return Search{}, fmt.Errorf("%w: multicast M-SEARCH without MX", ErrMalformed)
	}
	return s, nil
}

// isGroupHost reports whether an M-SEARCH's HOST is one of the SSDP
// multicast groups, IPv4 or IPv6 ("[FF02::C]:1900").
func isGroupHost(h string) bool {
	if strings.HasPrefix(h, Group) {
		return true
	}
	h = strings.ToLower(h)
	return strings.HasPrefix(h, "["+GroupLinkLocal6+"]") || strings.HasPrefix(h, "["+GroupSiteLocal6+"]")
}

// Message is s as a multicast M-SEARCH (or a unicast one to host).
func (s Search) Message(host string) Message {
	if s.Multicast {
		host = fmt.Sprintf("%s:%d", Group, Port)
	}
	m := Message{Method: "M-SEARCH", Target: "*", Headers: []Header{
		{"HOST", host}, {"MAN", `"ssdp:discover"`}, {"ST", s.ST},
	}}
	if s.MX > 0 || s.Multicast {
		m.Headers = append(m.Headers, Header{"MX", strconv.Itoa(int(s.MX / time.Second))})
	}
	if s.UserAgent != "" {
		m.Headers = append(m.Headers, Header{"USER-AGENT", s.UserAgent})
	}
	return m
}

// Announce is what a device says about one of its targets, in a search
// response or a NOTIFY (UDA 2.0 §1.2.2, §1.3.3).
type Announce struct {
	Target   string        // ST of a response, NT of a NOTIFY
	USN      string        // unique service name
	Location string        // description URL
	MaxAge   time.Duration // CACHE-CONTROL max-age
	Server   string        // "OS/version UPnP/2.0 product/version"
	BootID   uint32        // BOOTID.UPNP.ORG
	ConfigID uint32        // CONFIGID.UPNP.ORG
	// Host is a NOTIFY's HOST, the group it goes to; empty is the IPv4
	// group, "239.255.255.250:1900".
	Host string
}

// Response is a's answer to an M-SEARCH.
func (a Announce) Response() Message {
	return Message{Status: 200, Reason: "OK", Headers: []Header{
		{"CACHE-CONTROL", fmt.Sprintf("max-age=%d", int(a.MaxAge/time.Second))},
		{"EXT", ""},
		{"LOCATION", a.Location},
		{"SERVER", a.Server},
		{"ST", a.Target},
		{"USN", a.USN},
		{"BOOTID.UPNP.ORG", strconv.FormatUint(uint64(a.BootID), 10)},
		{"CONFIGID.UPNP.ORG", strconv.FormatUint(uint64(a.ConfigID), 10)},
	}}
}

// Notify is a's NOTIFY with sub "ssdp:alive" or "ssdp:byebye".
func (a Announce) Notify(sub string) Message {
	host := a.Host
	if host == "" {
		host = fmt.Sprintf("%s:%d", Group, Port)
	}
	m := Message{Method: "NOTIFY", Target: "*", Headers: []Header{{"HOST", host}}}
	if sub == "ssdp:alive" {
		m.Headers = append(m.Headers,
			Header{"CACHE-CONTROL", fmt.Sprintf("max-age=%d", int(a.MaxAge/time.Second))},
			Header{"LOCATION", a.Location},
			Header{"SERVER", a.Server})
	}
	m.Headers = append(m.Headers,
		Header{"NT", a.Target}, Header{"NTS", sub}, Header{"USN", a.USN},
		Header{"BOOTID.UPNP.ORG", strconv.FormatUint(uint64(a.BootID), 10)},
		Header{"CONFIGID.UPNP.ORG", strconv.FormatUint(uint64(a.ConfigID), 10)})
	return m
}
