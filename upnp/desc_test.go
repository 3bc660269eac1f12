package upnp

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
)

func TestDescriptionsWellFormed(t *testing.T) {
	u := deviceUUIDs([16]byte{1, 2, 3})
	docs := map[string][]byte{
		"igd1": rootDesc(1, u, "dev"), "igd2": rootDesc(2, u, "dev"),
		"ip1": scpd(ipConnActions, ipConnVars, 1), "ip2": scpd(ipConnActions, ipConnVars, 2),
		"cmn": scpd(commonActions, commonVars, 1), "fc": scpd(fcActions, fcVars, 1),
	}
	for name, b := range docs {
		d := xml.NewDecoder(strings.NewReader(string(b)))
		for {
			if _, err := d.Token(); err != nil {
				if err.Error() != "EOF" {
					t.Errorf("%s: %v", name, err)
				}
				break
			}
		}
	}
	if s := string(docs["igd1"]); !strings.Contains(s, TypeWANIPConn1) || strings.Contains(s, ":2<") {
		t.Errorf("IGD:1 description holds v2 types")
	}
	if s := string(docs["ip1"]); strings.Contains(s, "AddAnyPortMapping") {
		t.Errorf("WANIPConnection:1 SCPD lists a v2 action")
	}
	for ua, want := range map[string]bool{"Microsoft-Windows/10.0 UPnP/1.0": true, "FDSSDP": true, "Go-http-client/1.1": false, "miniupnpc/2.2": false} {
		if isMicrosoft(ua) != want {
			t.Errorf("isMicrosoft(%q) != %v", ua, want)
		}
	}
}

// The UPnP Device Architecture's schemas (device-1-0.xsd, service-1-0.xsd)
// as Go structs: what the test below requires of every element is what
// the schemas require (minOccurs 1, the enumerations, the cross-references
// the UDA text adds), checked without the XSD files, which this machine
// cannot fetch.
type xsdRoot struct {
	XMLName     xml.Name   `xml:"urn:schemas-upnp-org:device-1-0 root"`
	SpecVersion xsdSpec    `xml:"specVersion"`
	Device      *xsdDevice `xml:"device"`
}

type xsdSpec struct {
	Major *int `xml:"major"`
	Minor *int `xml:"minor"`
}

type xsdDevice struct {
	DeviceType   string       `xml:"deviceType"`
	FriendlyName string       `xml:"friendlyName"`
	Manufacturer string       `xml:"manufacturer"`
	ModelName    string       `xml:"modelName"`
	UDN          string       `xml:"UDN"`
	Services     []xsdService `xml:"serviceList>service"`
	Devices      []xsdDevice  `xml:"deviceList>device"`
}

type xsdService struct {
	ServiceType, ServiceID, SCPDURL, ControlURL, EventSubURL string
}

func (s *xsdService) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var v struct {
		ServiceType string `xml:"serviceType"`
		ServiceID   string `xml:"serviceId"`
		SCPDURL     string `xml:"SCPDURL"`
		ControlURL  string `xml:"controlURL"`
		EventSubURL string `xml:"eventSubURL"`
	}
	if err := d.DecodeElement(&v, &start); err != nil {
		return err
	}
	*s = xsdService(v)
	return nil
}

type xsdSCPD struct {
	XMLName     xml.Name    `xml:"urn:schemas-upnp-org:service-1-0 scpd"`
	SpecVersion xsdSpec     `xml:"specVersion"`
	Actions     []xsdAction `xml:"actionList>action"`
	Vars        []xsdVar    `xml:"serviceStateTable>stateVariable"`
}

type xsdAction struct {
	Name string   `xml:"name"`
	Args []xsdArg `xml:"argumentList>argument"`
}

type xsdArg struct {
	Name      string `xml:"name"`
	Direction string `xml:"direction"`
	Related   string `xml:"relatedStateVariable"`
}

type xsdVar struct {
	SendEvents string   `xml:"sendEvents,attr"`
	Name       string   `xml:"name"`
	DataType   string   `xml:"dataType"`
	Allowed    []string `xml:"allowedValueList>allowedValue"`
	Range      *struct {
		Minimum string `xml:"minimum"`
		Maximum string `xml:"maximum"`
	} `xml:"allowedValueRange"`
}

// upnpTypes are the data types of UDA 2.0 §2.5.
var upnpTypes = map[string]bool{
	"ui1": true, "ui2": true, "ui4": true, "ui8": true, "i1": true, "i2": true, "i4": true, "i8": true, "int": true,
	"r4": true, "r8": true, "number": true, "fixed.14.4": true, "float": true, "char": true, "string": true,
	"date": true, "dateTime": true, "dateTime.tz": true, "time": true, "time.tz": true, "boolean": true,
	"bin.base64": true, "bin.hex": true, "uri": true, "uuid": true,
}

func TestDescriptionsFollowTheSchemas(t *testing.T) {
	u := deviceUUIDs([16]byte{1, 2, 3})
	scpds := map[string][]byte{
		pathSCPDIP1: scpd(ipConnActions, ipConnVars, 1), pathSCPDIP2: scpd(ipConnActions, ipConnVars, 2),
		pathSCPDCmn: scpd(commonActions, commonVars, 1), pathSCPDFC: scpd(fcActions, fcVars, 1),
	}
	for _, v := range []int{1, 2} {
		var r xsdRoot
		if err := xml.Unmarshal(rootDesc(v, u, "dev"), &r); err != nil {
			t.Fatalf("IGD:%d: %v", v, err)
		}
		if r.SpecVersion.Major == nil || *r.SpecVersion.Major < 1 || r.SpecVersion.Minor == nil || r.Device == nil {
			t.Fatalf("IGD:%d: specVersion or device missing: %+v", v, r)
		}
		udns := map[string]bool{}
		services := 0
		var walk func(d xsdDevice, depth int)
		walk = func(d xsdDevice, depth int) {
			services += len(d.Services)
			for name, val := range map[string]string{"deviceType": d.DeviceType, "friendlyName": d.FriendlyName, "manufacturer": d.Manufacturer, "modelName": d.ModelName, "UDN": d.UDN} {
				if val == "" {
					t.Errorf("IGD:%d: device %q lacks %s", v, d.DeviceType, name)
				}
			}
			if !strings.HasPrefix(d.UDN, "uuid:") || udns[d.UDN] {
				t.Errorf("IGD:%d: UDN %q not a uuid or not unique", v, d.UDN)
			}
			udns[d.UDN] = true
			if !strings.HasPrefix(d.DeviceType, "urn:schemas-upnp-org:device:") || (depth == 0 && d.DeviceType != fmt.Sprintf("urn:schemas-upnp-org:device:InternetGatewayDevice:%d", v)) {
				t.Errorf("IGD:%d: device type %q", v, d.DeviceType)
			}
			for _, s := range d.Services {
				for name, val := range map[string]string{"serviceType": s.ServiceType, "serviceId": s.ServiceID, "SCPDURL": s.SCPDURL, "controlURL": s.ControlURL, "eventSubURL": s.EventSubURL} {
					if val == "" {
						t.Errorf("IGD:%d: service %q lacks %s", v, s.ServiceType, name)
					}
				}
				if !strings.HasPrefix(s.ServiceID, "urn:upnp-org:serviceId:") {
					t.Errorf("IGD:%d: serviceId %q", v, s.ServiceID)
				}
				if _, ok := scpds[s.SCPDURL]; !ok {
					t.Errorf("IGD:%d: SCPDURL %q is not served", v, s.SCPDURL)
				}
			}
			for _, c := range d.Devices {
				walk(c, depth+1)
			}
		}
		walk(*r.Device, 0)
		// IGD, WANDevice, WANConnectionDevice; WANCommonInterfaceConfig and
		// WANIPConnection, and in v2 WANIPv6FirewallControl.
		if len(udns) != 3 || services != 1+v {
			t.Errorf("IGD:%d: %d devices and %d services, want 3 and %d", v, len(udns), services, 1+v)
		}
	}
	for path, b := range scpds {
		var s xsdSCPD
		if err := xml.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if s.SpecVersion.Major == nil || s.SpecVersion.Minor == nil || len(s.Vars) == 0 {
			t.Errorf("%s: specVersion or serviceStateTable missing", path)
		}
		vars := map[string]xsdVar{}
		for _, sv := range s.Vars {
			if sv.Name == "" || !upnpTypes[sv.DataType] || (sv.SendEvents != "" && sv.SendEvents != "yes" && sv.SendEvents != "no") {
				t.Errorf("%s: state variable %+v", path, sv)
			}
			if len(sv.Allowed) > 0 && sv.Range != nil {
				t.Errorf("%s: %s has both allowedValueList and allowedValueRange", path, sv.Name)
			}
			if sv.Range != nil && (sv.Range.Minimum == "" || sv.Range.Maximum == "") {
				t.Errorf("%s: %s: allowedValueRange without minimum or maximum", path, sv.Name)
			}
			vars[sv.Name] = sv
		}
		actions := map[string]bool{}
		for _, a := range s.Actions {
			if a.Name == "" || actions[a.Name] {
				t.Errorf("%s: action name %q empty or repeated", path, a.Name)
			}
			actions[a.Name] = true
			seenOut := false
			for _, arg := range a.Args {
				switch arg.Direction {
				case "in":
					if seenOut {
						t.Errorf("%s: %s: in-argument %s after an out-argument (UDA 2.0 §2.5)", path, a.Name, arg.Name)
					}
				case "out":
					seenOut = true
				default:
					t.Errorf("%s: %s: argument %s direction %q", path, a.Name, arg.Name, arg.Direction)
				}
				if _, ok := vars[arg.Related]; arg.Name == "" || !ok {
					t.Errorf("%s: %s: argument %q relates to %q, not in the state table", path, a.Name, arg.Name, arg.Related)
				}
			}
		}
	}
}
