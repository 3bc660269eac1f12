// Package soap parses and marshals the SOAP 1.1 envelopes of UPnP control
// (UPnP Device Architecture 2.0 §3): an action with its arguments, its
// response, and the UPnPError fault. It owns no sockets.
package soap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrMalformed wraps every parse failure.
var ErrMalformed = errors.New("soap: malformed envelope")

// MaxArgs bounds the arguments of one action; the largest UPnP IGD action
// (AddPinhole, AddPortMapping) has eight.
const MaxArgs = 32

const (
	envelopeNS = "http://schemas.xmlsoap.org/soap/envelope/"
	encodingNS = "http://schemas.xmlsoap.org/soap/encoding/"
	controlNS  = "urn:schemas-upnp-org:control-1-0"
)

// Arg is one in or out argument. UDA 2.0 §3.2.1: arguments appear in the
// order of the service description.
type Arg struct{ Name, Value string }

// Action is an action invocation or, with Name ending in "Response", its
// answer: <u:Name xmlns:u="ServiceType"> with one child per argument.
type Action struct {
	ServiceType string // the element's namespace, urn:schemas-upnp-org:service:…
	Name        string
	Args        []Arg
}

// Arg returns the value of argument name and whether it is present.
func (a Action) Arg(name string) (string, bool) {
	for _, x := range a.Args {
		if x.Name == name {
			return x.Value, true
		}
	}
	return "", false
}

// ParseAction reads an envelope holding one action. The argument
// elements' namespace is ignored: clients send them unqualified (UDA 2.0
// §3.2.1) or, some, with the action's prefix.
func ParseAction(b []byte) (Action, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var a Action
	depth := 0 // 1 Envelope, 2 Body/Header, 3 action, 4 argument
	inHeader := false
	seenAction := false
	var cur *Arg
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Action{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				if t.Name.Local != "Envelope" {
					return Action{}, fmt.Errorf("%w: root element %q", ErrMalformed, t.Name.Local)
				}
			case depth == 2:
				inHeader = t.Name.Local == "Header"
				if !inHeader && t.Name.Local != "Body" {
					return Action{}, fmt.Errorf("%w: element %q in Envelope", ErrMalformed, t.Name.Local)
				}
			case inHeader:
			case depth == 3:
				if seenAction {
					return Action{}, fmt.Errorf("%w: two actions in Body", ErrMalformed)
				}
				seenAction = true
				a.ServiceType, a.Name = t.Name.Space, t.Name.Local
				if !ValidName(a.Name) || !validType(a.ServiceType) {
					return Action{}, fmt.Errorf("%w: action %q of %q", ErrMalformed, a.Name, a.ServiceType)
				}
			case depth == 4:
				if len(a.Args) == MaxArgs {
					return Action{}, fmt.Errorf("%w: more than %d arguments", ErrMalformed, MaxArgs)
				}
				if !ValidName(t.Name.Local) {
					return Action{}, fmt.Errorf("%w: argument %q", ErrMalformed, t.Name.Local)
				}
				a.Args = append(a.Args, Arg{Name: t.Name.Local})
				cur = &a.Args[len(a.Args)-1]
			default:
				return Action{}, fmt.Errorf("%w: argument %q holds elements", ErrMalformed, cur.Name)
			}
		case xml.EndElement:
			if depth == 4 {
				cur = nil
			}
			if depth == 2 {
				inHeader = false
			}
			depth--
		case xml.CharData:
			if cur != nil && depth == 4 {
				cur.Value += string(t)
			}
		}
	}
	if !seenAction {
		return Action{}, fmt.Errorf("%w: no action in Body", ErrMalformed)
	}
	return a, nil
}

// Append marshals a as a whole envelope; it refuses what ParseAction
// would refuse.
func (a Action) Append(dst []byte) ([]byte, error) {
	if !ValidName(a.Name) || !validType(a.ServiceType) {
		return dst, fmt.Errorf("%w: action %q of %q", ErrMalformed, a.Name, a.ServiceType)
	}
	if len(a.Args) > MaxArgs {
		return dst, fmt.Errorf("%w: more than %d arguments", ErrMalformed, MaxArgs)
	}
	dst = append(dst, `<?xml version="1.0"?>`+"\r\n"+`<s:Envelope xmlns:s="`+envelopeNS+`" s:encodingStyle="`+encodingNS+`"><s:Body>`...)
	dst = fmt.Appendf(dst, `<u:%s xmlns:u="%s">`, a.Name, a.ServiceType)
	for _, x := range a.Args {
		if !ValidName(x.Name) {
			return dst, fmt.Errorf("%w: argument %q", ErrMalformed, x.Name)
		}
		dst = append(dst, '<')
		dst = append(dst, x.Name...)
		dst = append(dst, '>')
		var err error
		if dst, err = appendEscaped(dst, x.Value); err != nil {
			return dst, err
		}
		dst = append(dst, "</"...)
		dst = append(dst, x.Name...)
		dst = append(dst, '>')
	}
	dst = fmt.Appendf(dst, `</u:%s></s:Body></s:Envelope>`+"\r\n", a.Name)
	return dst, nil
}

func appendEscaped(dst []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return dst, fmt.Errorf("%w: a value is not UTF-8", ErrMalformed)
	}
	for _, r := range s {
		if !isXMLChar(r) {
			return dst, fmt.Errorf("%w: character %U in a value", ErrMalformed, r)
		}
	}
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return append(dst, b.Bytes()...), nil
}

// isXMLChar is the Char production of XML 1.0 §2.2.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || (r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// ValidName reports whether s is an XML name without a prefix, ASCII only
// (UPnP's action, argument and state variable names are); GENA's event
// bodies use it too.
func ValidName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// validType is a service type URN (or any URI without characters that
// need escaping in an attribute).
func validType(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`"'<>&`, c) >= 0 {
			return false
		}
	}
	return true
}

// ParseSOAPAction reads the SOAPACTION header, `"serviceType#action"`
// (UDA 2.0 §3.2.1; the quotes are required there, but some clients omit
// them, and we accept either).
func ParseSOAPAction(h string) (serviceType, action string, err error) {
	h = strings.TrimSpace(h)
	if len(h) >= 2 && h[0] == '"' && h[len(h)-1] == '"' {
		h = h[1 : len(h)-1]
	}
	st, name, ok := strings.Cut(h, "#")
	if !ok || !validType(st) || !ValidName(name) {
		return "", "", fmt.Errorf("%w: SOAPACTION %q", ErrMalformed, h)
	}
	return st, name, nil
}

// Fault is a UPnPError (UDA 2.0 §3.2.2): an error code and its
// description. It is an error.
type Fault struct {
	Code        int
	Description string
}

func (f *Fault) Error() string { return fmt.Sprintf("soap: UPnPError %d %s", f.Code, f.Description) }

type faultEnvelope struct {
	XMLName xml.Name `xml:"Envelope"`
	Body    struct {
		Fault struct {
			Code   string `xml:"faultcode"`
			String string `xml:"faultstring"`
			Detail struct {
				Err struct {
					Code        string `xml:"errorCode"`
					Description string `xml:"errorDescription"`
				} `xml:"UPnPError"`
			} `xml:"detail"`
		} `xml:"Fault"`
	} `xml:"Body"`
}

// ParseFault reads a fault envelope.
func ParseFault(b []byte) (*Fault, error) {
	var e faultEnvelope
	if err := xml.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	u := e.Body.Fault.Detail.Err
	code, err := strconv.Atoi(strings.TrimSpace(u.Code))
	if err != nil || code < 0 || code > 9999 || e.Body.Fault.String != "UPnPError" {
		return nil, fmt.Errorf("%w: not a UPnPError fault", ErrMalformed)
	}
	return &Fault{Code: code, Description: u.Description}, nil
}

// Append marshals f as a fault envelope (sent with HTTP status 500).
func (f *Fault) Append(dst []byte) ([]byte, error) {
	if f.Code < 0 || f.Code > 9999 {
		return dst, fmt.Errorf("%w: error code %d", ErrMalformed, f.Code)
	}
	dst = append(dst, `<?xml version="1.0"?>`+"\r\n"+`<s:Envelope xmlns:s="`+envelopeNS+`" s:encodingStyle="`+encodingNS+`"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="`+controlNS+`">`...)
	dst = fmt.Appendf(dst, "<errorCode>%d</errorCode><errorDescription>", f.Code)
	dst, err := appendEscaped(dst, f.Description)
	if err != nil {
		return dst, err
	}
	dst = append(dst, "</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>\r\n"...)
	return dst, nil
}
