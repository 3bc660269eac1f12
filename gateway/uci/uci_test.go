package uci

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// ignoreLines compares what a File means, not where it was written: Append
// moves lines around.
var ignoreLines = cmp.Options{
	cmpopts.IgnoreFields(Section{}, "Line"),
	cmpopts.IgnoreFields(Option{}, "Line"),
}

// ignoreComments compares what a File means, not its comments, which
// TestComments checks.
var ignoreComments = cmp.Options{
	cmpopts.IgnoreFields(File{}, "Head", "Tail"),
	cmpopts.IgnoreFields(Section{}, "Comments"),
	cmpopts.IgnoreFields(Option{}, "Comments"),
}

// opt and list build expected options tersely.
func opt(line int, name, value string) *Option {
	return &Option{Name: name, Values: []string{value}, Line: line}
}

func list(line int, name string, values ...string) *Option {
	return &Option{Name: name, Values: values, List: true, Line: line}
}

var parseTests = []struct {
	name string
	in   string
	want []*Section
	pkg  string
}{
	{name: "empty", in: ""},
	{name: "only comments and blanks", in: "\n# a comment\n   \n\t# indented comment with 'quote\n"},
	{name: "package", in: "package network\n", pkg: "network"},
	{name: "package with dash", in: "package https-dns-proxy\n", pkg: "https-dns-proxy"},
	{
		name: "anonymous and named sections",
		in:   "config defaults\nconfig interface 'lan'\nconfig zone ''\n",
		want: []*Section{
			{Type: "defaults", Line: 1},
			{Type: "interface", Name: "lan", Line: 2},
			{Type: "zone", Line: 3}, // uci reads an empty name as anonymous
		},
	},
	{
		name: "quoted keyword-position words",
		in:   "config 'interface' \"lan\"\n\toption 'proto' static\n",
		want: []*Section{{Type: "interface", Name: "lan", Line: 1, Options: []*Option{opt(2, "proto", "static")}}},
	},
	{
		name: "value forms",
		in: `config t
	option single 'a b'
	option double "a b"
	option bare abc
	option concat 'a'"b"c
	option uciquote 'it'\''s'
	option dqescape "q\"b\\s\n"
	option bareescape a\ b\'c
	option hashinword a#b
	option hashquoted '# not a comment'
	option hashafterquote 'a'#b
	option empty ''
	option emptydouble ""
	option tabs	'x'		# trailing comment
	option trailing 'x' # it's a "comment"
	option utf8 'Café ☕'
`,
		want: []*Section{{Type: "t", Line: 1, Options: []*Option{
			opt(2, "single", "a b"),
			opt(3, "double", "a b"),
			opt(4, "bare", "abc"),
			opt(5, "concat", "abc"),
			opt(6, "uciquote", "it's"),
			opt(7, "dqescape", `q"b\sn`),
			opt(8, "bareescape", "a b'c"),
			opt(9, "hashinword", "a#b"),
			opt(10, "hashquoted", "# not a comment"),
			opt(11, "hashafterquote", "a#b"),
			opt(12, "empty", ""),
			opt(13, "emptydouble", ""),
			opt(14, "tabs", "x"),
			opt(15, "trailing", "x"),
			opt(16, "utf8", "Café ☕"),
		}}},
	},
	{
		name: "indentation, CRLF and no final newline",
		in:   "  config t 'n'\r\n\t \toption a '1'\r\n\r\n    list b 2",
		want: []*Section{{Type: "t", Name: "n", Line: 1, Options: []*Option{opt(2, "a", "1"), list(4, "b", "2")}}},
	},
	{
		name: "repeated option is kept, in order",
		in:   "config t\n\toption a 1\n\toption b x\n\toption a 2\n",
		want: []*Section{{Type: "t", Line: 1, Options: []*Option{opt(2, "a", "1"), opt(3, "b", "x"), opt(4, "a", "2")}}},
	},
	{
		name: "list accumulates across other options",
		in:   "config t\n\tlist a 1\n\toption b x\n\tlist a 2\n\tlist a ''\n",
		want: []*Section{{Type: "t", Line: 1, Options: []*Option{list(2, "a", "1", "2", ""), opt(3, "b", "x")}}},
	},
	{
		name: "same name as option and list in different sections",
		in:   "config t\n\toption a 1\nconfig t\n\tlist a 2\n",
		want: []*Section{
			{Type: "t", Line: 1, Options: []*Option{opt(2, "a", "1")}},
			{Type: "t", Line: 3, Options: []*Option{list(4, "a", "2")}},
		},
	},
	{
		name: "package then sections",
		in:   "package gateway\n\nconfig nat44 'main'\n\toption enabled '1'\n",
		pkg:  "gateway",
		want: []*Section{{Type: "nat44", Name: "main", Line: 3, Options: []*Option{opt(4, "enabled", "1")}}},
	},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("t", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := &File{Name: "t", Package: tt.pkg, Sections: tt.want}
			if diff := cmp.Diff(want, got, ignoreComments); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRoundTrip checks that Append writes what Parse reads back as the
// same File.
func TestRoundTrip(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("t", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			text := f.Append(nil)
			back, err := Parse("t", text)
			if err != nil {
				t.Fatalf("Parse(Append) of\n%s\nfailed: %v", text, err)
			}
			if diff := cmp.Diff(f, back, ignoreLines); diff != "" {
				t.Errorf("round trip through\n%s\n(-want +got):\n%s", text, diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		line   int
		reason string
	}{
		{"unterminated single quote", "config t\n\toption x 'abc\n", 2, "unterminated quote"},
		{"unterminated double quote", "config t\n\n\toption x \"abc\\\"\n", 3, "unterminated quote"},
		{"backslash in double quote at end", "config t\n\toption x \"abc\\", 2, "unterminated quote"},
		{"quote in section name", "config t 'lan\n", 1, "unterminated quote"},
		{"multi-line value", "config t\n\toption x 'a\nb'\n", 2, "unterminated quote"},
		{"backslash at end of line", "config t\n\toption x abc\\\n", 2, "backslash at end of line"},
		{"option before config", "# first\n\noption x y\n", 3, "option outside of a config section"},
		{"list before config", "package p\nlist x y\n", 2, "list outside of a config section"},
		{"invalid option name", "config t\n\toption a-b 1\n", 2, `invalid option name "a-b"`},
		{"empty option name", "config t\n\toption '' 1\n", 2, `invalid option name ""`},
		{"invalid list name", "config t\n\tlist a.b 1\n", 2, `invalid list name "a.b"`},
		{"invalid section type", "config my-type\n", 1, `invalid section type "my-type"`},
		{"empty section type", "config ''\n", 1, `invalid section type ""`},
		{"invalid section name", "config t\nconfig t 'l a n'\n", 2, `invalid section name "l a n"`},
		{"invalid package name", "package 'a b'\n", 1, `invalid package name "a b"`},
		{"option without value", "config t\n\toption x\n", 2, "expected 'option NAME VALUE'"},
		{"option without name", "config t\n\toption # x 1\n", 2, "expected 'option NAME VALUE'"},
		{"list without value", "config t\n\tlist x\n", 2, "expected 'list NAME VALUE'"},
		{"config without type", "config\n", 1, "expected 'config TYPE [NAME]'"},
		{"package without name", "package\n", 1, "expected 'package NAME'"},
		{"unquoted space in value", "config t\n\toption name NAS box\n", 2, "too many values"},
		{"list with two values", "config t\n\tlist dns 1.1.1.1 8.8.8.8\n", 2, "too many values"},
		{"config with three words", "config t a b\n", 1, "too many values"},
		{"package with two words", "package a b\n", 1, "too many values"},
		{"second package", "package a\npackage b\n", 2, "more than one package statement"},
		{"package after config", "config t\npackage a\n", 2, "package statement after a config section"},
		{"duplicate section name", "config t 'lan'\n\nconfig u 'lan'\n", 3, `duplicate section name "lan" (first on line 1)`},
		{"list after option", "config t\n\toption x 1\n\tlist x 2\n", 3, `list "x" conflicts with option "x" on line 2`},
		{"option after list", "config t\n\tlist x 1\n\tlist x 2\n\toption x 3\n", 4, `option "x" conflicts with list "x" on line 2`},
		{"unknown keyword", "config t\n\tvalue x 1\n", 2, `unknown keyword "value" (want package, config, option or list)`},
		{"keywords are lower case", "Config t\n", 1, `unknown keyword "Config" (want package, config, option or list)`},
		{"first error wins", "config t\n\toption a-b 1\n\toption x 'y\n", 2, `invalid option name "a-b"`},
		{"CRLF line count", "config t\r\n\r\n\toption x 'a\r\n", 3, "unterminated quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("/etc/config/gateway", []byte(tt.in))
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("Parse = %+v, %v; want *Error", f, err)
			}
			want := &Error{File: "/etc/config/gateway", Line: tt.line, Reason: tt.reason}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse("/etc/config/gateway", []byte("config t\n\toption x 'a\n"))
	want := "/etc/config/gateway:2: unterminated quote"
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v, want %q", err, want)
	}
}

func TestErrf(t *testing.T) {
	f, err := Parse("/etc/config/gateway", []byte("config nat44\n\toption udp_timeout 'soon'\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := f.SectionsOfType("nat44")[0].Option("udp_timeout")
	err = f.Errf(o.Line, "invalid udp_timeout %q: %v", o.Values[0], errors.New("not a duration"))
	var got *Error
	if !errors.As(err, &got) {
		t.Fatalf("Errf returned %T, want *Error", err)
	}
	want := &Error{File: "/etc/config/gateway", Line: 2, Reason: `invalid udp_timeout "soon": not a duration`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Errf (-want +got):\n%s", diff)
	}
	if s := err.Error(); s != `/etc/config/gateway:2: invalid udp_timeout "soon": not a duration` {
		t.Errorf("Error() = %q", s)
	}
}

func TestAppend(t *testing.T) {
	tests := []struct {
		name string
		f    *File
		want string
	}{
		{"empty", &File{}, "\n"},
		{"package only", &File{Package: "gateway"}, "package gateway\n\n"},
		{
			name: "uci commit layout",
			f: &File{Sections: []*Section{
				{Type: "interface", Name: "lan", Options: []*Option{opt(0, "proto", "static"), list(0, "dns", "9.9.9.9", "1.1.1.1")}},
				{Type: "device", Options: []*Option{opt(0, "name", "br-lan")}},
				{Type: "empty"},
			}},
			want: "\nconfig interface 'lan'\n\toption proto 'static'\n\tlist dns '9.9.9.9'\n\tlist dns '1.1.1.1'\n" +
				"\nconfig device\n\toption name 'br-lan'\n" +
				"\nconfig empty\n\n",
		},
		{
			name: "uci export layout",
			f:    &File{Package: "network", Sections: []*Section{{Type: "globals", Name: "globals", Options: []*Option{opt(0, "ula_prefix", "fd00::/48")}}}},
			want: "package network\n\nconfig globals 'globals'\n\toption ula_prefix 'fd00::/48'\n\n",
		},
		{
			name: "quotes and specials",
			f: &File{Sections: []*Section{{Type: "t", Options: []*Option{
				opt(0, "a", "it's"),
				opt(0, "b", `"\ #x`),
				opt(0, "c", ""),
				opt(0, "d", "''"),
			}}}},
			want: "\nconfig t\n\toption a 'it'\\''s'\n\toption b '\"\\ #x'\n\toption c ''\n\toption d ''\\'''\\'''\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.f.Append(nil))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Append (-want +got):\n%s", diff)
			}
			if _, err := Parse("t", []byte(got)); err != nil {
				t.Errorf("Append wrote text Parse rejects: %v", err)
			}
		})
	}
	// Append appends.
	if got := string((&File{Package: "p"}).Append([]byte("x"))); got != "xpackage p\n\n" {
		t.Errorf("Append to non-empty dst = %q", got)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNetwork parses a file as `uci commit` writes it, which Append must
// reproduce byte for byte.
func TestNetwork(t *testing.T) {
	in := readTestdata(t, "network")
	f, err := Parse("network", in)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(in), string(f.Append(nil))); diff != "" {
		t.Errorf("Append differs from uci's own output (-want +got):\n%s", diff)
	}
	wan := f.Section("wan")
	if got, _ := wan.Get("password"); got != `p4ss'w0rd "x"` {
		t.Errorf("wan password = %q", got)
	}
	devs := f.SectionsOfType("device")
	if len(devs) != 1 {
		t.Fatalf("%d device sections, want 1", len(devs))
	}
	if diff := cmp.Diff([]string{"lan1", "lan2", "lan3", "lan4"}, devs[0].Values("ports")); diff != "" {
		t.Errorf("br-lan ports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(list(26, "dns", "9.9.9.9", "2620:fe::fe"), f.Section("lan").Option("dns")); diff != "" {
		t.Errorf("lan dns (-want +got):\n%s", diff)
	}
}

// TestFirewall parses the hand-aligned style of OpenWrt's default
// /etc/config/firewall and checks its canonical form against a golden file.
func TestFirewall(t *testing.T) {
	f, err := Parse("firewall", readTestdata(t, "firewall"))
	if err != nil {
		t.Fatal(err)
	}
	got := f.Append(nil)
	golden := filepath.Join("testdata", "firewall.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(string(readTestdata(t, "firewall.golden")), string(got)); diff != "" {
		t.Errorf("canonical firewall (-want +got):\n%s", diff)
	}

	var names []string
	for _, r := range f.SectionsOfType("rule") {
		n, _ := r.Get("name")
		names = append(names, n)
	}
	if diff := cmp.Diff([]string{"Allow-DHCP-Renew", "Allow-Ping", "Allow-ICMPv6-Input"}, names); diff != "" {
		t.Errorf("rule names (-want +got):\n%s", diff)
	}
	wan := f.SectionsOfType("zone")[1]
	if diff := cmp.Diff([]string{"wan", "wan6"}, wan.Values("network")); diff != "" {
		t.Errorf("wan zone networks (-want +got):\n%s", diff)
	}
	if got := len(f.SectionsOfType("rule")[2].Values("icmp_type")); got != 11 {
		t.Errorf("ICMPv6 rule has %d icmp_type items, want 11", got)
	}
	if got, _ := f.Section("nas_http").Get("name"); got != "NAS web UI" {
		t.Errorf("redirect name = %q", got)
	}
}

// TestGateway parses a hand-written /etc/config/gateway with every quoting
// style people use.
func TestGateway(t *testing.T) {
	got, err := Parse("gateway", readTestdata(t, "gateway"))
	if err != nil {
		t.Fatal(err)
	}
	want := &File{Name: "gateway", Package: "gateway", Sections: []*Section{
		{Type: "nat44", Name: "main", Line: 4, Options: []*Option{
			opt(5, "enabled", "1"),
			opt(6, "wan_device", "wan"),
			opt(7, "lan_prefix", "192.168.1.0/24"),
			opt(8, "udp_timeout", "300s"),
			opt(9, "udp_timeout", "120s"),
		}},
		{Type: "upnp", Name: "upnp", Line: 11, Options: []*Option{
			opt(12, "enabled", "1"),
			opt(13, "friendly_name", `Gateway "home"`),
			opt(14, "presentation_url", "http://192.168.1.1/"),
			opt(15, "notice", "it's fine"),
			list(16, "allow", "1024-65535 192.168.1.0/24 1024-65535"),
			list(17, "deny", "0-65535 0.0.0.0/0 0-65535"),
		}},
		{Type: "dhcp_host", Line: 19, Options: []*Option{
			opt(20, "mac", "aa:bb:cc:dd:ee:ff"),
			opt(21, "ip", "192.168.1.20"),
			opt(22, "name", "nas box"),
			opt(23, "tag", ""),
		}},
	}}
	if diff := cmp.Diff(want, got, ignoreComments); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

// TestTestdataRoundTrip runs every testdata file through Append and Parse.
func TestTestdataRoundTrip(t *testing.T) {
	for _, name := range []string{"network", "firewall", "firewall.golden", "gateway"} {
		t.Run(name, func(t *testing.T) {
			f, err := Parse(name, readTestdata(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Check(); err != nil {
				t.Errorf("Check of parsed file: %v", err)
			}
			back, err := Parse(name, f.Append(nil))
			if err != nil {
				t.Fatalf("Parse(Append): %v", err)
			}
			if diff := cmp.Diff(f, back, ignoreLines); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	f, err := Parse("t", []byte(`
config zone 'lan'
	option name lan
	option mtu 1500
	option mtu 1492
	list network lan
	list network guest
config zone
	option name wan
config rule 'r1'
`))
	if err != nil {
		t.Fatal(err)
	}
	lan := f.Section("lan")
	tests := []struct {
		name    string
		sec     *Section
		opt     string
		value   string
		ok      bool
		values  []string
		optLine int // 0: no option
	}{
		{"plain option", lan, "name", "lan", true, []string{"lan"}, 3},
		{"last option wins", lan, "mtu", "1492", true, []string{"1492"}, 5},
		{"list", lan, "network", "guest", true, []string{"lan", "guest"}, 6},
		{"absent", lan, "masq", "", false, nil, 0},
		{"anonymous section", f.SectionsOfType("zone")[1], "name", "wan", true, []string{"wan"}, 9},
		{"empty section", f.Section("r1"), "name", "", false, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			value, ok := tt.sec.Get(tt.opt)
			if value != tt.value || ok != tt.ok {
				t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.opt, value, ok, tt.value, tt.ok)
			}
			if diff := cmp.Diff(tt.values, tt.sec.Values(tt.opt)); diff != "" {
				t.Errorf("Values(%q) (-want +got):\n%s", tt.opt, diff)
			}
			line := 0
			if o := tt.sec.Option(tt.opt); o != nil {
				line = o.Line
			}
			if line != tt.optLine {
				t.Errorf("Option(%q).Line = %d, want %d", tt.opt, line, tt.optLine)
			}
		})
	}

	var types []string
	for _, s := range f.SectionsOfType("zone") {
		types = append(types, s.Name)
	}
	if diff := cmp.Diff([]string{"lan", ""}, types); diff != "" {
		t.Errorf("SectionsOfType(zone) names (-want +got):\n%s", diff)
	}
	if got := f.SectionsOfType("redirect"); got != nil {
		t.Errorf("SectionsOfType(redirect) = %v, want nil", got)
	}
	if got := f.Section(""); got != nil {
		t.Errorf("Section(\"\") = %+v, want nil: anonymous sections are not found by name", got)
	}
	if got := f.Section("wan"); got != nil {
		t.Errorf("Section(wan) = %+v, want nil", got)
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name  string
		in    []*Option
		set   string
		value string
		want  []*Option
	}{
		{"append", []*Option{opt(2, "a", "1")}, "b", "2", []*Option{opt(2, "a", "1"), opt(0, "b", "2")}},
		{"replace", []*Option{opt(2, "a", "1"), opt(3, "b", "x")}, "a", "9", []*Option{opt(2, "a", "9"), opt(3, "b", "x")}},
		{"replace last of repeated", []*Option{opt(2, "a", "1"), opt(3, "a", "2")}, "a", "9", []*Option{opt(2, "a", "1"), opt(3, "a", "9")}},
		{"list becomes option", []*Option{list(2, "a", "1", "2")}, "a", "9", []*Option{opt(2, "a", "9")}},
		{"into empty section", nil, "a", "it's", []*Option{opt(0, "a", "it's")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Section{Type: "t", Options: tt.in}
			s.Set(tt.set, tt.value)
			if diff := cmp.Diff(tt.want, s.Options); diff != "" {
				t.Errorf("Options after Set (-want +got):\n%s", diff)
			}
			if got, _ := s.Get(tt.set); got != tt.value {
				t.Errorf("Get after Set = %q, want %q", got, tt.value)
			}
			f := &File{Sections: []*Section{s}}
			if err := f.Check(); err != nil {
				t.Errorf("Check after Set: %v", err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	sec := func(opts ...*Option) *File {
		return &File{Name: "t", Sections: []*Section{{Type: "t", Line: 1, Options: opts}}}
	}
	tests := []struct {
		name   string
		f      *File
		reason string // "" for no error
	}{
		{"valid", sec(opt(2, "a", "1"), list(3, "b", "1", "2")), ""},
		{"repeated option", sec(opt(2, "a", "1"), opt(3, "a", "2")), ""},
		{"bad package", &File{Package: "a b"}, `invalid package name "a b"`},
		{"bad type", &File{Sections: []*Section{{Type: "a.b"}}}, `invalid section type "a.b"`},
		{"bad name", &File{Sections: []*Section{{Type: "t", Name: "a b"}}}, `invalid section name "a b"`},
		{"duplicate name", &File{Sections: []*Section{{Type: "t", Name: "x"}, {Type: "u", Name: "x"}}}, `duplicate section name "x"`},
		{"two anonymous", &File{Sections: []*Section{{Type: "t"}, {Type: "t"}}}, ""},
		{"bad option name", sec(opt(2, "a-b", "1")), `invalid option name "a-b"`},
		{"mixed", sec(opt(2, "a", "1"), list(3, "a", "2")), `list "a" conflicts with option "a"`},
		{"option without value", sec(&Option{Name: "a"}), `option "a" has 0 values`},
		{"empty list", sec(&Option{Name: "a", List: true}), `list "a" has 0 values`},
		{"option with two values", sec(&Option{Name: "a", Values: []string{"1", "2"}}), `option "a" has 2 values`},
		{"newline", sec(list(4, "a", "ok", "x\ny")), `list "a" has a value with a newline`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Check()
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if _, err := Parse("t", tt.f.Append(nil)); err != nil {
					t.Errorf("Check passed but Parse(Append) failed: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check = %v, want *Error", err)
			}
			if diff := cmp.Diff(tt.reason, e.Reason); diff != "" {
				t.Errorf("reason (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if st, err := os.Stat(name); err != nil || st.IsDir() {
			continue // testdata/fuzz
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tt := range parseTests {
		f.Add([]byte(tt.in))
	}
	for _, s := range []string{
		"config t\n\toption a 'x'\\''y'\"z\\\"\"w\\ v\n",
		"package p\nconfig t 'n'\n\tlist l ''\n\tlist l '#'\n\toption o \"\\\\\"\n",
		"config t\r\n\toption a 'b\r'\r\n",
		"config t\n\toption a 'unterminated\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse("fuzz", b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 {
				t.Fatalf("error %v is not an *Error with a line", err)
			}
			return // rejecting is fine; crashing is not
		}
		if err := file.Check(); err != nil {
			t.Fatalf("Check rejects a parsed file: %v", err)
		}
		text := file.Append(nil)
		back, err := Parse("fuzz", text)
		if err != nil {
			t.Fatalf("accepted input re-encodes to text Parse rejects: %v\n%s", err, text)
		}
		if diff := cmp.Diff(file, back, ignoreLines); diff != "" {
			t.Fatalf("round trip changed the file (-want +got):\n%s", diff)
		}
		if again := back.Append(nil); string(again) != string(text) {
			t.Fatalf("Append is not stable:\n%s\nthen\n%s", text, again)
		}
	})
}

// TestComments checks that comments survive a parse and a write, each
// with the statement it stood before (or ended).
func TestComments(t *testing.T) {
	in := "# head\npackage gateway\n# before main\nconfig gateway 'main' # on config\n\t# before wan\n\toption wan 'eth0'\n\tlist lan 'a'\n\t# between list items\n\tlist lan 'b'\n\n# trailing\n"
	f, err := Parse("t", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section("main")
	if diff := cmp.Diff([]string{"# before main", "# on config"}, s.Comments); diff != "" {
		t.Errorf("section comments (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"# before wan"}, s.Option("wan").Comments); diff != "" {
		t.Errorf("option comments (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"# between list items"}, s.Option("lan").Comments); diff != "" {
		t.Errorf("list comments (-want +got):\n%s", diff)
	}
	want := "# head\npackage gateway\n\n# before main\n# on config\nconfig gateway 'main'\n\t# before wan\n\toption wan 'eth0'\n\t# between list items\n\tlist lan 'a'\n\tlist lan 'b'\n\n# trailing\n\n"
	got := string(f.Append(nil))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Append (-want +got):\n%s", diff)
	}
	back, err := Parse("t", []byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f, back, ignoreLines); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	f.Head = []string{"not a comment"}
	if err := f.Check(); err == nil {
		t.Error("Check passed a comment without '#'")
	}
}

// TestEdit edits a file as the daemon does for the web panel: add and
// remove sections and options; what it does not touch (unknown sections,
// comments, order) stays.
func TestEdit(t *testing.T) {
	in := "package gateway\n\n# the box\nconfig gateway 'main'\n\toption wan 'eth0'\n\nconfig redirect\n\t# the NAS\n\toption name 'nas'\n\n# someone else's\nconfig other\n\toption keep 'me'\n\nconfig dhcp\n\toption start '100'\n\toption leasetime '12h'\n"
	f, err := Parse("t", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	r := f.Add("redirect", "")
	r.Set("name", "game")
	f.Add("host", "pc").Set("mac", "02:00:00:00:00:01")
	d := f.SectionsOfType("dhcp")[0]
	d.Set("start", "50")
	if !d.Del("leasetime") || d.Del("leasetime") {
		t.Error("Del reports wrongly whether it removed")
	}
	if !f.Remove(f.SectionsOfType("redirect")[0]) || f.Remove(&Section{}) {
		t.Error("Remove reports wrongly whether it removed")
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	want := "package gateway\n\n# the box\nconfig gateway 'main'\n\toption wan 'eth0'\n" +
		"\nconfig redirect\n\toption name 'game'\n" +
		"\n# someone else's\nconfig other\n\toption keep 'me'\n" +
		"\nconfig dhcp\n\toption start '50'\n" +
		"\nconfig host 'pc'\n\toption mac '02:00:00:00:00:01'\n\n"
	if diff := cmp.Diff(want, string(f.Append(nil))); diff != "" {
		t.Errorf("edited file (-want +got):\n%s", diff)
	}
}
