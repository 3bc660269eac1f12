package upnp

import (
	"fmt"
	"strings"
)

// Service and device types (IGD:1 and IGD:2, UPnP Forum).
const (
	urnDevice  = "urn:schemas-upnp-org:device:"
	urnService = "urn:schemas-upnp-org:service:"

	TypeIGD1        = urnDevice + "InternetGatewayDevice:1"
	TypeIGD2        = urnDevice + "InternetGatewayDevice:2"
	TypeWANDevice1  = urnDevice + "WANDevice:1"
	TypeWANDevice2  = urnDevice + "WANDevice:2"
	TypeWANConnDev1 = urnDevice + "WANConnectionDevice:1"
	TypeWANConnDev2 = urnDevice + "WANConnectionDevice:2"
	TypeWANIPConn1  = urnService + "WANIPConnection:1"
	TypeWANIPConn2  = urnService + "WANIPConnection:2"
	TypeWANCommon1  = urnService + "WANCommonInterfaceConfig:1"
	TypeIPv6FC1     = urnService + "WANIPv6FirewallControl:1"
)

// The paths of the HTTP side.
const (
	PathRootDesc = "/rootDesc.xml" // IGD:2, or IGD:1 for Microsoft user agents
	PathIGD1     = "/igd1.xml"     // always IGD:1: the LOCATION of answers to :1 searches
	PathIGD2     = "/igd2.xml"     // always IGD:2
	pathSCPDIP1  = "/WANIPCn1.xml"
	pathSCPDIP2  = "/WANIPCn2.xml"
	pathSCPDCmn  = "/WANCfg.xml"
	pathSCPDFC   = "/WANIP6FC.xml"
	pathCtlIP    = "/ctl/IPConn"
	pathCtlCmn   = "/ctl/CmnIfCfg"
	pathCtlFC    = "/ctl/IP6FCtl"
	pathEvtIP    = "/evt/IPConn"
	pathEvtCmn   = "/evt/CmnIfCfg"
	pathEvtFC    = "/evt/IP6FCtl"
)

// uuids are the UDNs of the root device, the WANDevice and the
// WANConnectionDevice, derived from the stored device UUID.
type uuids [3]string

func deviceUUIDs(b [16]byte) uuids {
	var u uuids
	for i := range u {
		c := b
		c[15] ^= byte(i)
		u[i] = fmt.Sprintf("uuid:%x-%x-%x-%x-%x", c[0:4], c[4:6], c[6:8], c[8:10], c[10:16])
	}
	return u
}

// rootDesc is the device description of IGD:v (UDA 2.0 §2.3), with URLs
// relative to the description's own (URLBase is deprecated).
func rootDesc(v int, u uuids, model string) []byte {
	var b strings.Builder
	spec := "<specVersion><major>1</major><minor>0</minor></specVersion>"
	root := `<root xmlns="urn:schemas-upnp-org:device-1-0">`
	if v == 2 {
		spec = "<specVersion><major>1</major><minor>1</minor></specVersion>"
		root = `<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1">`
	}
	dev := func(typ, name, udn string) {
		fmt.Fprintf(&b, "<device><deviceType>%s</deviceType><friendlyName>%s</friendlyName><manufacturer>gateway</manufacturer><manufacturerURL>https://openwrt.org/</manufacturerURL><modelDescription>gateway home router</modelDescription><modelName>gateway</modelName><modelNumber>%s</modelNumber><modelURL>https://openwrt.org/</modelURL><UDN>%s</UDN>", typ, name, xmlEscape(model), udn)
	}
	svc := func(typ, id, scpd, ctl, evt string) {
		fmt.Fprintf(&b, "<service><serviceType>%s</serviceType><serviceId>urn:upnp-org:serviceId:%s</serviceId><SCPDURL>%s</SCPDURL><controlURL>%s</controlURL><eventSubURL>%s</eventSubURL></service>", typ, id, scpd, ctl, evt)
	}
	b.WriteString(`<?xml version="1.0"?>` + "\r\n" + root + spec)
	igd, wd, wcd, ipc, scpdIP := TypeIGD1, TypeWANDevice1, TypeWANConnDev1, TypeWANIPConn1, pathSCPDIP1
	if v == 2 {
		igd, wd, wcd, ipc, scpdIP = TypeIGD2, TypeWANDevice2, TypeWANConnDev2, TypeWANIPConn2, pathSCPDIP2
	}
	dev(igd, "gateway", u[0])
	b.WriteString("<deviceList>")
	dev(wd, "WANDevice", u[1])
	b.WriteString("<serviceList>")
	svc(TypeWANCommon1, "WANCommonIFC1", pathSCPDCmn, pathCtlCmn, pathEvtCmn)
	b.WriteString("</serviceList><deviceList>")
	dev(wcd, "WANConnectionDevice", u[2])
	b.WriteString("<serviceList>")
	svc(ipc, "WANIPConn1", scpdIP, pathCtlIP, pathEvtIP)
	if v == 2 {
		svc(TypeIPv6FC1, "WANIPv6Firewall1", pathSCPDFC, pathCtlFC, pathEvtFC)
	}
	b.WriteString("</serviceList></device></deviceList></device></deviceList><presentationURL>/</presentationURL></device></root>\r\n")
	return []byte(b.String())
}

func xmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")
	return r.Replace(s)
}

// stateVar is a service state variable (UDA 2.0 §2.5).
type stateVar struct {
	name, typ string
	evented   bool
	allowed   []string
	min, max  string // allowedValueRange
}

// actionDesc is one action of a service description.
type actionDesc struct {
	name    string
	in, out [][2]string // argument name, related state variable
	v2      bool        // WANIPConnection:2 only
}

var ipConnVars = []stateVar{
	{name: "ConnectionType", typ: "string"},
	{name: "PossibleConnectionTypes", typ: "string", evented: true, allowed: []string{"Unconfigured", "IP_Routed", "IP_Bridged"}},
	{name: "ConnectionStatus", typ: "string", evented: true, allowed: []string{"Unconfigured", "Connecting", "Connected", "PendingDisconnect", "Disconnecting", "Disconnected"}},
	{name: "Uptime", typ: "ui4"},
	{name: "LastConnectionError", typ: "string", allowed: []string{"ERROR_NONE"}},
	{name: "RSIPAvailable", typ: "boolean"},
	{name: "NATEnabled", typ: "boolean"},
	{name: "ExternalIPAddress", typ: "string", evented: true},
	{name: "PortMappingNumberOfEntries", typ: "ui2", evented: true},
	{name: "PortMappingEnabled", typ: "boolean"},
	{name: "PortMappingLeaseDuration", typ: "ui4"},
	{name: "RemoteHost", typ: "string"},
	{name: "ExternalPort", typ: "ui2"},
	{name: "InternalPort", typ: "ui2", min: "1", max: "65535"},
	{name: "PortMappingProtocol", typ: "string", allowed: []string{"TCP", "UDP"}},
	{name: "InternalClient", typ: "string"},
	{name: "PortMappingDescription", typ: "string"},
	{name: "A_ARG_TYPE_PortListing", typ: "string"},
	{name: "A_ARG_TYPE_Manage", typ: "boolean"},
	{name: "SystemUpdateID", typ: "ui4", evented: true},
}

var ipConnActions = []actionDesc{
	{name: "SetConnectionType", in: [][2]string{{"NewConnectionType", "ConnectionType"}}},
	{name: "GetConnectionTypeInfo", out: [][2]string{{"NewConnectionType", "ConnectionType"}, {"NewPossibleConnectionTypes", "PossibleConnectionTypes"}}},
	{name: "GetStatusInfo", out: [][2]string{{"NewConnectionStatus", "ConnectionStatus"}, {"NewLastConnectionError", "LastConnectionError"}, {"NewUptime", "Uptime"}}},
	{name: "GetNATRSIPStatus", out: [][2]string{{"NewRSIPAvailable", "RSIPAvailable"}, {"NewNATEnabled", "NATEnabled"}}},
	{name: "GetGenericPortMappingEntry", in: [][2]string{{"NewPortMappingIndex", "PortMappingNumberOfEntries"}}, out: mappingOut(true)},
	{name: "GetSpecificPortMappingEntry", in: [][2]string{{"NewRemoteHost", "RemoteHost"}, {"NewExternalPort", "ExternalPort"}, {"NewProtocol", "PortMappingProtocol"}}, out: mappingOut(false)[3:]},
	{name: "AddPortMapping", in: mappingOut(true)},
	{name: "DeletePortMapping", in: [][2]string{{"NewRemoteHost", "RemoteHost"}, {"NewExternalPort", "ExternalPort"}, {"NewProtocol", "PortMappingProtocol"}}},
	{name: "GetExternalIPAddress", out: [][2]string{{"NewExternalIPAddress", "ExternalIPAddress"}}},
	{name: "AddAnyPortMapping", v2: true, in: mappingOut(true), out: [][2]string{{"NewReservedPort", "ExternalPort"}}},
	{name: "DeletePortMappingRange", v2: true, in: [][2]string{{"NewStartPort", "ExternalPort"}, {"NewEndPort", "ExternalPort"}, {"NewProtocol", "PortMappingProtocol"}, {"NewManage", "A_ARG_TYPE_Manage"}}},
	{name: "GetListOfPortMappings", v2: true, in: [][2]string{{"NewStartPort", "ExternalPort"}, {"NewEndPort", "ExternalPort"}, {"NewProtocol", "PortMappingProtocol"}, {"NewManage", "A_ARG_TYPE_Manage"}, {"NewNumberOfPorts", "PortMappingNumberOfEntries"}}, out: [][2]string{{"NewPortListing", "A_ARG_TYPE_PortListing"}}},
}

// mappingOut is the eight arguments describing a mapping, in the order
// of AddPortMapping (with the remote host, external port and protocol).
func mappingOut(withKey bool) [][2]string {
	a := [][2]string{{"NewRemoteHost", "RemoteHost"}, {"NewExternalPort", "ExternalPort"}, {"NewProtocol", "PortMappingProtocol"},
		{"NewInternalPort", "InternalPort"}, {"NewInternalClient", "InternalClient"}, {"NewEnabled", "PortMappingEnabled"},
		{"NewPortMappingDescription", "PortMappingDescription"}, {"NewLeaseDuration", "PortMappingLeaseDuration"}}
	_ = withKey
	return a
}

var commonVars = []stateVar{
	{name: "WANAccessType", typ: "string", allowed: []string{"DSL", "POTS", "Cable", "Ethernet"}},
	{name: "Layer1UpstreamMaxBitRate", typ: "ui4"},
	{name: "Layer1DownstreamMaxBitRate", typ: "ui4"},
	{name: "PhysicalLinkStatus", typ: "string", evented: true, allowed: []string{"Up", "Down"}},
	{name: "EnabledForInternet", typ: "boolean"},
	{name: "TotalBytesSent", typ: "ui4"},
	{name: "TotalBytesReceived", typ: "ui4"},
	{name: "TotalPacketsSent", typ: "ui4"},
	{name: "TotalPacketsReceived", typ: "ui4"},
}

var commonActions = []actionDesc{
	{name: "GetCommonLinkProperties", out: [][2]string{{"NewWANAccessType", "WANAccessType"}, {"NewLayer1UpstreamMaxBitRate", "Layer1UpstreamMaxBitRate"}, {"NewLayer1DownstreamMaxBitRate", "Layer1DownstreamMaxBitRate"}, {"NewPhysicalLinkStatus", "PhysicalLinkStatus"}}},
	{name: "GetEnabledForInternet", out: [][2]string{{"NewEnabledForInternet", "EnabledForInternet"}}},
	{name: "GetTotalBytesSent", out: [][2]string{{"NewTotalBytesSent", "TotalBytesSent"}}},
	{name: "GetTotalBytesReceived", out: [][2]string{{"NewTotalBytesReceived", "TotalBytesReceived"}}},
	{name: "GetTotalPacketsSent", out: [][2]string{{"NewTotalPacketsSent", "TotalPacketsSent"}}},
	{name: "GetTotalPacketsReceived", out: [][2]string{{"NewTotalPacketsReceived", "TotalPacketsReceived"}}},
}

var fcVars = []stateVar{
	{name: "FirewallEnabled", typ: "boolean", evented: true},
	{name: "InboundPinholeAllowed", typ: "boolean", evented: true},
	{name: "A_ARG_TYPE_OutboundPinholeTimeout", typ: "ui4"},
	{name: "A_ARG_TYPE_IPv6Address", typ: "string"},
	{name: "A_ARG_TYPE_Port", typ: "ui2"},
	{name: "A_ARG_TYPE_Protocol", typ: "ui2"},
	{name: "A_ARG_TYPE_LeaseTime", typ: "ui4", min: "1", max: "86400"},
	{name: "A_ARG_TYPE_UniqueID", typ: "ui2"},
	{name: "A_ARG_TYPE_PinholePackets", typ: "ui4"},
	{name: "A_ARG_TYPE_Boolean", typ: "boolean"},
}

var fcActions = []actionDesc{
	{name: "GetFirewallStatus", out: [][2]string{{"FirewallEnabled", "FirewallEnabled"}, {"InboundPinholeAllowed", "InboundPinholeAllowed"}}},
	{name: "GetOutboundPinholeTimeout", in: [][2]string{{"RemoteHost", "A_ARG_TYPE_IPv6Address"}, {"RemotePort", "A_ARG_TYPE_Port"}, {"InternalClient", "A_ARG_TYPE_IPv6Address"}, {"InternalPort", "A_ARG_TYPE_Port"}, {"Protocol", "A_ARG_TYPE_Protocol"}}, out: [][2]string{{"OutboundPinholeTimeout", "A_ARG_TYPE_OutboundPinholeTimeout"}}},
	{name: "AddPinhole", in: [][2]string{{"RemoteHost", "A_ARG_TYPE_IPv6Address"}, {"RemotePort", "A_ARG_TYPE_Port"}, {"InternalClient", "A_ARG_TYPE_IPv6Address"}, {"InternalPort", "A_ARG_TYPE_Port"}, {"Protocol", "A_ARG_TYPE_Protocol"}, {"LeaseTime", "A_ARG_TYPE_LeaseTime"}}, out: [][2]string{{"UniqueID", "A_ARG_TYPE_UniqueID"}}},
	{name: "UpdatePinhole", in: [][2]string{{"UniqueID", "A_ARG_TYPE_UniqueID"}, {"NewLeaseTime", "A_ARG_TYPE_LeaseTime"}}},
	{name: "DeletePinhole", in: [][2]string{{"UniqueID", "A_ARG_TYPE_UniqueID"}}},
	{name: "GetPinholePackets", in: [][2]string{{"UniqueID", "A_ARG_TYPE_UniqueID"}}, out: [][2]string{{"PinholePackets", "A_ARG_TYPE_PinholePackets"}}},
	{name: "CheckPinholeWorking", in: [][2]string{{"UniqueID", "A_ARG_TYPE_UniqueID"}}, out: [][2]string{{"IsWorking", "A_ARG_TYPE_Boolean"}}},
}

// scpd is a service description (UDA 2.0 §2.5); v1 leaves out the
// WANIPConnection:2 actions and variables.
func scpd(actions []actionDesc, vars []stateVar, v int) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>` + "\r\n" + `<scpd xmlns="urn:schemas-upnp-org:service-1-0"><specVersion><major>1</major><minor>0</minor></specVersion><actionList>`)
	for _, a := range actions {
		if a.v2 && v < 2 {
			continue
		}
		fmt.Fprintf(&b, "<action><name>%s</name>", a.name)
		if len(a.in)+len(a.out) > 0 {
			b.WriteString("<argumentList>")
			for _, dir := range []struct {
				d    string
				args [][2]string
			}{{"in", a.in}, {"out", a.out}} {
				for _, x := range dir.args {
					fmt.Fprintf(&b, "<argument><name>%s</name><direction>%s</direction><relatedStateVariable>%s</relatedStateVariable></argument>", x[0], dir.d, x[1])
				}
			}
			b.WriteString("</argumentList>")
		}
		b.WriteString("</action>")
	}
	b.WriteString("</actionList><serviceStateTable>")
	for _, sv := range vars {
		if v < 2 && (sv.name == "A_ARG_TYPE_PortListing" || sv.name == "A_ARG_TYPE_Manage" || sv.name == "SystemUpdateID") {
			continue
		}
		ev := "no"
		if sv.evented && !(v == 2 && sv.name == "PortMappingNumberOfEntries") {
			ev = "yes"
		}
		fmt.Fprintf(&b, `<stateVariable sendEvents="%s"><name>%s</name><dataType>%s</dataType>`, ev, sv.name, sv.typ)
		if len(sv.allowed) > 0 {
			b.WriteString("<allowedValueList>")
			for _, a := range sv.allowed {
				fmt.Fprintf(&b, "<allowedValue>%s</allowedValue>", a)
			}
			b.WriteString("</allowedValueList>")
		}
		if sv.min != "" {
			fmt.Fprintf(&b, "<allowedValueRange><minimum>%s</minimum><maximum>%s</maximum></allowedValueRange>", sv.min, sv.max)
		}
		b.WriteString("</stateVariable>")
	}
	b.WriteString("</serviceStateTable></scpd>\r\n")
	return []byte(b.String())
}
