// Command sizes reports what each dependency costs in a Go binary: it reads
// the symbol table of an unstripped ELF build and adds up, per module and per
// package, the bytes that stay in the file once it is stripped.
//
//	go run ./build/sizes [-top 25] BINARY
//
// Code, read-only data and initialised data are counted by symbol. The
// function tables (.gopclntab, and the per-function data in go:func.*) have
// no symbols of their own; they grow with the code, so they are shared out
// in proportion to each package's code. Strings and type descriptors that
// the linker merges are counted under "(shared)". BSS takes no room in the
// file and is left out. The total is what `-ldflags=-s -w` leaves, give or
// take the ELF headers.
package main

import (
	"cmp"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

func main() {
	top := flag.Int("top", 25, "packages to list")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: sizes [-top N] BINARY\n\nBINARY must be built without -s -w (the symbol table is read).\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	r, err := measure(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sizes:", err)
		os.Exit(1)
	}
	r.print(os.Stdout, *top)
}

// report is the size of a binary, by module and by package.
type report struct {
	file     int64            // bytes in file-backed allocated sections
	modules  map[string]int64 // module (or std group) -> bytes, with its share of the tables
	packages map[string]int64 // package path -> bytes, with its share of the tables
}

// measure reads the ELF symbols of an unstripped Go binary.
func measure(path string) (*report, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("%s: %w (build without -ldflags=-s)", path, err)
	}

	var file, tables int64
	counted := map[int]bool{} // sections whose bytes are in the stripped file
	for i, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Type == elf.SHT_NOBITS || s.Size == 0 {
			continue
		}
		counted[i] = true
		file += int64(s.Size)
		if s.Name == ".gopclntab" {
			tables += int64(s.Size)
		}
	}

	direct := map[string]int64{} // package -> bytes named for it
	code := map[string]int64{}   // package -> bytes of code
	var codeTotal, bySymbol int64
	for _, s := range syms {
		if !counted[int(s.Section)] || s.Size == 0 {
			continue
		}
		sec := f.Sections[s.Section]
		size := int64(s.Size)
		bySymbol += size
		if strings.HasPrefix(s.Name, "go:func.") {
			tables += size // funcdata: shared out like the pclntab
			continue
		}
		pkg := packageOf(s.Name)
		direct[pkg] += size
		if sec.Flags&elf.SHF_EXECINSTR != 0 && pkg != shared {
			code[pkg] += size
			codeTotal += size
		}
	}
	// Section bytes that no symbol covers (padding, the pclntab itself) are
	// the tables and the alignment between symbols.
	unnamed := file - bySymbol - sectionSize(f, ".gopclntab")
	if unnamed > 0 {
		direct[shared] += unnamed
	}

	r := &report{file: file, modules: map[string]int64{}, packages: map[string]int64{}}
	for pkg, n := range direct {
		if codeTotal > 0 {
			n += tables * code[pkg] / codeTotal
		}
		r.packages[pkg] += n
		r.modules[moduleOf(pkg)] += n
	}
	return r, nil
}

func sectionSize(f *elf.File, name string) int64 {
	if s := f.Section(name); s != nil {
		return int64(s.Size)
	}
	return 0
}

const shared = "(shared)"

// packageOf returns the import path that a Go symbol belongs to:
// "github.com/google/nftables/expr.(*Meta).marshal" -> "github.com/google/nftables/expr".
func packageOf(sym string) string {
	name := sym
	for _, p := range []string{"type:.eq.", "type:.hash.", "type:", "go:itab.", "go:link.", "go:"} {
		if strings.HasPrefix(name, p) {
			if p == "go:" {
				return shared // go:string.*, go:buildinfo and the like
			}
			name = name[len(p):]
			break
		}
	}
	name = strings.TrimLeft(name, "*[]0123456789")
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i] // generic arguments: the function's own package counts
	}
	if strings.HasPrefix(name, "map.") || strings.HasPrefix(name, "func(") || strings.HasPrefix(name, "struct") || strings.HasPrefix(name, "noalg.") || strings.HasPrefix(name, "chan ") || strings.HasPrefix(name, "interface") {
		return shared
	}
	slash := strings.LastIndexByte(name, '/')
	if i := strings.IndexByte(name[slash+1:], '.'); i >= 0 {
		name = name[:slash+1+i]
	}
	if name == "" || strings.ContainsAny(name, " (),") {
		return shared
	}
	return name
}

// modules groups packages the way a dependency decision is made: one line
// per third-party module, our own packages together, and the standard
// library split by what pulls it in.
var stdGroups = []struct{ prefix, group string }{
	{"net/http", "std: net/http (+ vendored x/net http2, idna, hpack)"},
	{"vendor/golang.org/x/net", "std: net/http (+ vendored x/net http2, idna, hpack)"},
	{"vendor/golang.org/x/text", "std: net/http (+ vendored x/net http2, idna, hpack)"},
	{"mime", "std: net/http (+ vendored x/net http2, idna, hpack)"},
	{"crypto/tls", "std: crypto (TLS, x509, FIPS module)"},
	{"crypto", "std: crypto (TLS, x509, FIPS module)"},
	{"vendor/golang.org/x/crypto", "std: crypto (TLS, x509, FIPS module)"},
	{"encoding/asn1", "std: crypto (TLS, x509, FIPS module)"},
	{"math/big", "std: crypto (TLS, x509, FIPS module)"},
	{"runtime", "std: runtime"},
	{"internal/runtime", "std: runtime"},
	{"net", "std: net"},
	{"encoding/json", "std: encoding/json + reflect"},
	{"reflect", "std: encoding/json + reflect"},
	{"internal/reflectlite", "std: encoding/json + reflect"},
	{"log/slog", "std: log/slog"},
}

var thirdParty = []string{
	"github.com/google/nftables",
	"github.com/jsimonetti/rtnetlink/v2",
	"github.com/mdlayher/netlink",
	"github.com/mdlayher/socket",
	"github.com/ti-mo/conntrack",
	"github.com/ti-mo/netfilter",
	"github.com/insomniacslk/dhcp",
	"github.com/u-root/uio",
	"github.com/pierrec/lz4/v4",
	"github.com/josharian/native",
	"github.com/pkg/errors",
	"golang.org/x/sys",
	"golang.org/x/net",
	"golang.org/x/sync",
	"golang.org/x/crypto",
	"golang.zx2c4.com/wireguard",
}

func moduleOf(pkg string) string {
	switch {
	case pkg == shared:
		return shared
	case pkg == "main" || pkg == "gateway" || strings.HasPrefix(pkg, "gateway/"):
		return "gateway (our packages)"
	}
	for _, m := range thirdParty {
		if pkg == m || strings.HasPrefix(pkg, m+"/") {
			return m
		}
	}
	first, _, _ := strings.Cut(pkg, "/")
	if strings.Contains(first, ".") {
		return pkg // a module this list does not know yet: shown by package
	}
	for _, g := range stdGroups {
		if pkg == g.prefix || strings.HasPrefix(pkg, g.prefix+"/") {
			return g.group
		}
	}
	return "std: other"
}

func (r *report) print(w io.Writer, top int) {
	fmt.Fprintf(w, "%-58s %10s %8s %6s\n", "module / group", "bytes", "MiB", "share")
	for _, e := range sorted(r.modules) {
		fmt.Fprintf(w, "%-58s %10d %8.2f %5.1f%%\n", e.name, e.n, mib(e.n), 100*float64(e.n)/float64(r.file))
	}
	fmt.Fprintf(w, "%-58s %10d %8.2f\n\n", "total (allocated sections in the file)", r.file, mib(r.file))
	fmt.Fprintf(w, "%-58s %10s %8s\n", "largest packages", "bytes", "MiB")
	for i, e := range sorted(r.packages) {
		if i == top {
			break
		}
		fmt.Fprintf(w, "%-58s %10d %8.2f\n", e.name, e.n, mib(e.n))
	}
}

type entry struct {
	name string
	n    int64
}

func sorted(m map[string]int64) []entry {
	var out []entry
	for k, v := range m {
		out = append(out, entry{k, v})
	}
	slices.SortFunc(out, func(a, b entry) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.name, b.name))
	})
	return out
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
