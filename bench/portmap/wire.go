package main

// The client side of the three protocols, as bytes: what the benchmark
// sends to either daemon and how it reads the answers. No I/O here.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// errMalformed marks an answer the benchmark cannot read.
var errMalformed = errors.New("portmap: malformed answer")

// Port-mapping protocols share this server port (RFC 6886 §3, RFC 6887 §19.1).
const pmpPort = 5351

// IP protocol numbers, as PCP carries them.
const (
	protoTCP = 6
	protoUDP = 17
)

// natpmpMap is a NAT-PMP mapping request (RFC 6886 §3.3): opcode 1 (UDP) or
// 2 (TCP); lifetime 0 deletes.
type natpmpMap struct {
	TCP                   bool
	InternalPort          uint16
	SuggestedExternalPort uint16
	Lifetime              time.Duration
}

func (r natpmpMap) opcode() byte {
	if r.TCP {
		return 2
	}
	return 1
}

// Append appends the 12-byte request.
func (r natpmpMap) Append(dst []byte) []byte {
	dst = append(dst, 0, r.opcode(), 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, r.InternalPort)
	dst = binary.BigEndian.AppendUint16(dst, r.SuggestedExternalPort)
	return binary.BigEndian.AppendUint32(dst, uint32(r.Lifetime/time.Second))
}

// natpmpMapResponse is the server's answer (RFC 6886 §3.3).
type natpmpMapResponse struct {
	Opcode             byte // 128 + the request's
	ResultCode         uint16
	Epoch              uint32
	InternalPort       uint16
	MappedExternalPort uint16
	Lifetime           time.Duration
}

func parseNATPMPMapResponse(b []byte) (natpmpMapResponse, error) {
	var r natpmpMapResponse
	if len(b) < 16 || b[0] != 0 {
		return r, fmt.Errorf("%w: NAT-PMP answer of %d bytes, version %d", errMalformed, len(b), first(b))
	}
	r.Opcode = b[1]
	r.ResultCode = binary.BigEndian.Uint16(b[2:])
	r.Epoch = binary.BigEndian.Uint32(b[4:])
	r.InternalPort = binary.BigEndian.Uint16(b[8:])
	r.MappedExternalPort = binary.BigEndian.Uint16(b[10:])
	r.Lifetime = time.Duration(binary.BigEndian.Uint32(b[12:])) * time.Second
	return r, nil
}

// natpmpAddressRequest asks for the external address (RFC 6886 §3.2): the
// probe that tells whether a NAT-PMP server answers at all.
var natpmpAddressRequest = []byte{0, 0}

func first(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// pcpMap is a PCP MAP request (RFC 6887 §7.1 header, §11.1 MAP opcode):
// 24 + 36 = 60 bytes. Lifetime 0 deletes the mapping with this nonce.
type pcpMap struct {
	Lifetime              time.Duration
	ClientIP              netip.Addr // the requester's own address
	Nonce                 [12]byte
	Protocol              byte
	InternalPort          uint16
	SuggestedExternalPort uint16
	SuggestedExternalIP   netip.Addr // invalid: ::ffff:0.0.0.0, "any IPv4 address"
}

// Append appends the 60-byte request.
func (r pcpMap) Append(dst []byte) []byte {
	dst = append(dst, 2, 1, 0, 0) // version 2, R=0, opcode MAP, reserved
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Lifetime/time.Second))
	dst = appendAddr16(dst, r.ClientIP)
	dst = append(dst, r.Nonce[:]...)
	dst = append(dst, r.Protocol, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, r.InternalPort)
	dst = binary.BigEndian.AppendUint16(dst, r.SuggestedExternalPort)
	ext := r.SuggestedExternalIP
	if !ext.IsValid() {
		ext = netip.IPv4Unspecified()
	}
	return appendAddr16(dst, ext)
}

// appendAddr16 writes a as 16 bytes, IPv4 as IPv4-mapped (RFC 6887 §5).
func appendAddr16(dst []byte, a netip.Addr) []byte {
	b := a.As16()
	return append(dst, b[:]...)
}

// pcpMapResponse is the answer to a MAP (RFC 6887 §7.2, §11.1).
type pcpMapResponse struct {
	Opcode               byte // 0x80 | 1
	ResultCode           byte
	Lifetime             time.Duration
	Epoch                uint32
	Nonce                [12]byte
	Protocol             byte
	InternalPort         uint16
	AssignedExternalPort uint16
	AssignedExternalIP   netip.Addr
}

func parsePCPMapResponse(b []byte) (pcpMapResponse, error) {
	var r pcpMapResponse
	if len(b) < 24 || b[0] != 2 {
		return r, fmt.Errorf("%w: PCP answer of %d bytes, version %d", errMalformed, len(b), first(b))
	}
	r.Opcode = b[1]
	r.ResultCode = b[3]
	r.Lifetime = time.Duration(binary.BigEndian.Uint32(b[4:])) * time.Second
	r.Epoch = binary.BigEndian.Uint32(b[8:])
	if r.ResultCode != 0 {
		return r, nil // an error answer may carry the opcode's fields or not
	}
	if len(b) < 60 {
		return r, fmt.Errorf("%w: PCP MAP answer of %d bytes", errMalformed, len(b))
	}
	copy(r.Nonce[:], b[24:36])
	r.Protocol = b[36]
	r.InternalPort = binary.BigEndian.Uint16(b[40:])
	r.AssignedExternalPort = binary.BigEndian.Uint16(b[42:])
	r.AssignedExternalIP = netip.AddrFrom16([16]byte(b[44:60])).Unmap()
	return r, nil
}

// pcpAnnounce is an ANNOUNCE request (RFC 6887 §14.1): the PCP probe.
func pcpAnnounce(client netip.Addr) []byte {
	b := []byte{2, 0, 0, 0, 0, 0, 0, 0}
	return appendAddr16(b, client)
}

// soapAction is one SOAP call to a WANIPConnection service.
type soapAction struct {
	Name string
	Args [][2]string // in the order the service description lists them
}

func addPortMapping(ext uint16, internal netip.Addr, intPort uint16, lease time.Duration) soapAction {
	return soapAction{Name: "AddPortMapping", Args: [][2]string{
		{"NewRemoteHost", ""},
		{"NewExternalPort", strconv.Itoa(int(ext))},
		{"NewProtocol", "TCP"},
		{"NewInternalPort", strconv.Itoa(int(intPort))},
		{"NewInternalClient", internal.String()},
		{"NewEnabled", "1"},
		{"NewPortMappingDescription", "bench"},
		{"NewLeaseDuration", strconv.Itoa(int(lease / time.Second))},
	}}
}

func deletePortMapping(ext uint16) soapAction {
	return soapAction{Name: "DeletePortMapping", Args: [][2]string{
		{"NewRemoteHost", ""},
		{"NewExternalPort", strconv.Itoa(int(ext))},
		{"NewProtocol", "TCP"},
	}}
}

// appendRequest appends the whole HTTP request for a to dst: one request
// per connection, as libminiupnpc sends it.
func (a soapAction) appendRequest(dst []byte, control *url.URL, service string) []byte {
	var body bytes.Buffer
	body.WriteString(`<?xml version="1.0"?>` + "\r\n" +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">` +
		`<s:Body><u:` + a.Name + ` xmlns:u="` + service + `">`)
	for _, kv := range a.Args {
		body.WriteString("<" + kv[0] + ">")
		xml.EscapeText(&body, []byte(kv[1]))
		body.WriteString("</" + kv[0] + ">")
	}
	body.WriteString(`</u:` + a.Name + `></s:Body></s:Envelope>` + "\r\n")
	dst = fmt.Appendf(dst, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n"+
		"SOAPAction: \"%s#%s\"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		control.RequestURI(), control.Host, service, a.Name, body.Len())
	return append(dst, body.Bytes()...)
}

// soapFault is a UPnP error answer (UPnP Device Architecture 2.0 §3.2.2).
type soapFault struct {
	Code        int
	Description string
}

func (f *soapFault) Error() string {
	return fmt.Sprintf("portmap: UPnP error %d %s", f.Code, f.Description)
}

// readSOAPAnswer reads the HTTP answer to a SOAP call: nil for a 200, a
// *soapFault for a UPnP error, another error for anything else.
func readSOAPAnswer(r *bufio.Reader) error {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return fmt.Errorf("portmap: SOAP answer: %w", err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(http.MaxBytesReader(nil, resp.Body, 64<<10)); err != nil {
		return fmt.Errorf("portmap: SOAP answer body: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var env struct {
		Code int    `xml:"Body>Fault>detail>UPnPError>errorCode"`
		Desc string `xml:"Body>Fault>detail>UPnPError>errorDescription"`
	}
	if xml.Unmarshal(body.Bytes(), &env) == nil && env.Code != 0 {
		return &soapFault{Code: env.Code, Description: env.Desc}
	}
	return fmt.Errorf("%w: HTTP %s", errMalformed, resp.Status)
}

// ssdpSearch is an M-SEARCH for root devices (UPnP Device Architecture 2.0
// §1.3.2).
func ssdpSearch() []byte {
	return []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: upnp:rootdevice\r\n\r\n")
}

// ssdpLocation returns the LOCATION of an M-SEARCH answer.
func ssdpLocation(b []byte) (string, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return "", fmt.Errorf("%w: SSDP: %v", errMalformed, err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%w: SSDP answer without LOCATION", errMalformed)
	}
	return loc, nil
}

// service is one service of a device description.
type service struct {
	ServiceType string `xml:"serviceType"`
	ControlURL  string `xml:"controlURL"`
}

type device struct {
	DeviceType string    `xml:"deviceType"`
	Services   []service `xml:"serviceList>service"`
	Devices    []device  `xml:"deviceList>device"`
}

// wanIPConnection finds the WANIPConnection service in a root description
// (the highest version listed) and returns its control URL, resolved
// against URLBase or the description's own URL, and its service type.
func wanIPConnection(desc []byte, location string) (*url.URL, string, error) {
	var root struct {
		URLBase string `xml:"URLBase"`
		Device  device `xml:"device"`
	}
	if err := xml.Unmarshal(desc, &root); err != nil {
		return nil, "", fmt.Errorf("%w: description: %v", errMalformed, err)
	}
	var found service
	var walk func(d device)
	walk = func(d device) {
		for _, s := range d.Services {
			if strings.HasPrefix(s.ServiceType, "urn:schemas-upnp-org:service:WANIPConnection:") && s.ServiceType > found.ServiceType {
				found = s
			}
		}
		for _, c := range d.Devices {
			walk(c)
		}
	}
	walk(root.Device)
	if found.ServiceType == "" {
		return nil, "", fmt.Errorf("%w: no WANIPConnection service in the description", errMalformed)
	}
	base := location
	if root.URLBase != "" {
		base = root.URLBase
	}
	b, err := url.Parse(base)
	if err != nil {
		return nil, "", fmt.Errorf("%w: description URL %q: %v", errMalformed, base, err)
	}
	c, err := b.Parse(strings.TrimSpace(found.ControlURL))
	if err != nil {
		return nil, "", fmt.Errorf("%w: control URL %q: %v", errMalformed, found.ControlURL, err)
	}
	return c, found.ServiceType, nil
}
