package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gateway/internal/testenv"
)

const (
	// A version as `git describe` prints it four commits after a tag, and
	// what the packages must call it.
	testVersion    = "v1.2.3-4-gabcdef0"
	testPkgVersion = "1.2.3_p4-r1"
)

// The arches the package test builds: both MIPS byte orders and ARMv7, the
// routers most people own. (`make packages` builds every arch.)
var packageArches = []string{"mipsel_24kc", "mips_24kc", "arm_cortex-a7_neon-vfpv4"}

// repoRoot is the repository root (tests run in build/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// nfpmVersion is the nfpm that build/lib.sh installs (NFPM_VERSION=...).
func nfpmVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "build", "lib.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "NFPM_VERSION="); ok {
			return v
		}
	}
	t.Fatal("build/lib.sh sets no NFPM_VERSION")
	return ""
}

// nfpm returns an nfpm binary: $NFPM, or nfpm $NFPM_VERSION installed from
// the Go module proxy into bin/tools as build/lib.sh does. The test skips
// (fails under CI=true), and says why, when it can be had neither way.
func nfpm(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NFPM"); p != "" {
		return p
	}
	nfpmVersion := nfpmVersion(t)
	dir := filepath.Join(repoRoot(t), "bin", "tools", "nfpm-"+nfpmVersion)
	bin := filepath.Join(dir, "nfpm")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", "github.com/goreleaser/nfpm/v2/cmd/nfpm@"+nfpmVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		testenv.Skip(t, "nfpm %s is not installed and cannot be installed from the module proxy (make deps installs it): %v\n%s", nfpmVersion, err, out)
	}
	return bin
}

// buildPackages runs build/packages.sh for packageArches into a temporary
// dist directory, once for all the package tests.
func buildPackages(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: builds router binaries and OpenWrt packages")
	}
	tool := nfpm(t)
	dist := t.TempDir()
	cmd := exec.Command("sh", "build/packages.sh")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "DIST="+dist, "NFPM="+tool, "VERSION="+testVersion, "ARCHS="+strings.Join(packageArches, " "))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build/packages.sh: %v\n%s", err, out)
	}
	t.Logf("build/packages.sh:\n%s", out)
	return dist
}

// entry is a file of an archive.
type entry struct {
	Mode     int64
	Uid, Gid int
	Type     byte
	Data     []byte
	PAX      map[string]string
}

func readTar(t *testing.T, r io.Reader) map[string]entry {
	t.Helper()
	files := map[string]entry{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := files[h.Name]; dup {
			t.Errorf("%s appears twice in the archive", h.Name)
		}
		files[h.Name] = entry{Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, Type: h.Typeflag, Data: data, PAX: h.PAXRecords}
	}
}

func readTarGz(t *testing.T, b []byte) map[string]entry {
	t.Helper()
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("not gzip data (starts %q)", b[:min(len(b), 8)])
	}
	z, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return readTar(t, z)
}

// regular returns the regular files of an archive, names without "./".
func regular(files map[string]entry) map[string]entry {
	out := map[string]entry{}
	for name, e := range files {
		if e.Type == tar.TypeReg {
			out[strings.TrimPrefix(name, "./")] = e
		}
	}
	return out
}

func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// payload is what both formats install: path -> (mode, source in the repo;
// "" for the binary).
var payload = map[string]struct {
	mode int64
	src  string
}{
	"usr/sbin/gateway":   {0o755, ""},
	"etc/init.d/gateway": {0o755, "build/openwrt/files/etc/init.d/gateway"},
	"etc/config/gateway": {0o644, "build/openwrt/files/etc/config/gateway"},
	"usr/share/nftables.d/chain-pre/forward/10-gateway.nft": {0o644, "build/openwrt/files/usr/share/nftables.d/chain-pre/forward/10-gateway.nft"},
	"lib/upgrade/keep.d/gateway":                            {0o644, "build/openwrt/files/lib/upgrade/keep.d/gateway"},
}

// checkPayload compares the installed files with the repository's and
// checks the binary; extra lists the other files the format adds.
func checkPayload(t *testing.T, arch string, files map[string]entry, extra ...string) {
	t.Helper()
	var want, got []string
	for name := range payload {
		want = append(want, name)
	}
	want = append(want, extra...)
	for name := range files {
		got = append(got, name)
	}
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("installed files (-want +got):\n%s", diff)
	}
	for name, e := range files {
		if e.Uid != 0 || e.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want root (0:0)", name, e.Uid, e.Gid)
		}
	}
	for name, p := range payload {
		e, ok := files[name]
		if !ok {
			continue
		}
		if e.Mode&0o7777 != p.mode {
			t.Errorf("%s has mode %04o, want %04o", name, e.Mode&0o7777, p.mode)
		}
		if p.src != "" && !bytes.Equal(e.Data, repoFile(t, p.src)) {
			t.Errorf("%s differs from %s", name, p.src)
		}
	}
	if bin, ok := files["usr/sbin/gateway"]; ok {
		checkBinary(t, arch, bin.Data)
	}
}

// checkBinary checks that the binary is a static, stripped, version-stamped
// ELF for the Go target that build/targets gives arch.
func checkBinary(t *testing.T, arch string, b []byte) {
	t.Helper()
	var tg target
	for _, x := range readTargets(t) {
		if x.Arch == arch {
			tg = x
		}
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("usr/sbin/gateway: %v", err)
	}
	want := map[string]struct {
		class elf.Class
		data  elf.Data
		mach  elf.Machine
	}{
		"mips":   {elf.ELFCLASS32, elf.ELFDATA2MSB, elf.EM_MIPS},
		"mipsle": {elf.ELFCLASS32, elf.ELFDATA2LSB, elf.EM_MIPS},
		"arm":    {elf.ELFCLASS32, elf.ELFDATA2LSB, elf.EM_ARM},
		"arm64":  {elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_AARCH64},
		"mips64": {elf.ELFCLASS64, elf.ELFDATA2MSB, elf.EM_MIPS},
		"amd64":  {elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_X86_64},
	}[tg.GOARCH]
	if f.Class != want.class || f.Data != want.data || f.Machine != want.mach {
		t.Errorf("usr/sbin/gateway is %v %v %v, want %v %v %v for %s (%s)", f.Class, f.Data, f.Machine, want.class, want.data, want.mach, arch, tg.GOARCH)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("usr/sbin/gateway is dynamically linked: it must be static (CGO_ENABLED=0)")
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("usr/sbin/gateway has a symbol table: not stripped (-ldflags=-s -w)")
	}
	if !bytes.Contains(b, []byte(testVersion)) {
		t.Errorf("usr/sbin/gateway does not carry the version %s (-X gateway/gateway.Version)", testVersion)
	}
	// MIPS: the float ABI is in .MIPS.abiflags (fp_abi, byte 7: 3 = soft).
	if s := f.Section(".MIPS.abiflags"); s != nil && strings.HasPrefix(tg.GOARCH, "mips") {
		d, err := s.Data()
		if err != nil || len(d) < 8 {
			t.Fatalf(".MIPS.abiflags: %v", err)
		}
		soft := d[7] == 3
		if soft != (tg.Variant == "softfloat") {
			t.Errorf("usr/sbin/gateway has MIPS fp_abi %d, want %s", d[7], tg.Variant)
		}
	}
	// Where qemu-user can run it, run it.
	q := map[string]string{"mips": "qemu-mips-static", "mipsle": "qemu-mipsel-static", "arm": "qemu-arm-static", "arm64": "qemu-aarch64-static"}[tg.GOARCH]
	if q == "" {
		return
	}
	qemu := testenv.Tool(t, q, "qemu-user-static")
	exe := filepath.Join(t.TempDir(), "gateway")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(qemu, exe, "version").CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != "gateway "+testVersion {
		t.Errorf("packaged binary under %s: 'gateway version' = %q, %v; want %q", q, got, err, "gateway "+testVersion)
	}
}

// controlFields parses a Debian-style control file.
func controlFields(t *testing.T, b []byte) map[string]string {
	t.Helper()
	fields := map[string]string{}
	var last string
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, " ") && last != "" {
			fields[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("control: bad line %q", line)
		}
		last = k
		fields[k] = strings.TrimSpace(v)
	}
	return fields
}

// The description must say which OpenWrt services the package replaces and
// how to switch back.
func checkDescription(t *testing.T, d string) {
	t.Helper()
	for _, w := range []string{"dnsmasq", "odhcpd", "miniupnpd", "service gateway takeover", "service gateway handback"} {
		if !strings.Contains(d, w) {
			t.Errorf("the description does not mention %q: %q", w, d)
		}
	}
}

func TestPackages(t *testing.T) {
	dist := buildPackages(t)
	for _, arch := range packageArches {
		t.Run("ipk/"+arch, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dist, "packages", arch, "gateway_"+testPkgVersion+"_"+arch+".ipk"))
			if err != nil {
				t.Fatal(err)
			}
			checkIPK(t, arch, b)
		})
		t.Run("apk/"+arch, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dist, "packages", arch, "gateway-"+testPkgVersion+".apk"))
			if err != nil {
				t.Fatal(err)
			}
			checkAPK(t, arch, b)
		})
	}
}

// checkIPK: an OpenWrt .ipk is a gzip'd tar (not Debian's ar) of
// debian-binary, control.tar.gz and data.tar.gz.
func checkIPK(t *testing.T, arch string, b []byte) {
	outer := regular(readTarGz(t, b))
	var names []string
	for name := range outer {
		names = append(names, name)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"control.tar.gz", "data.tar.gz", "debian-binary"}, names); diff != "" {
		t.Fatalf("ipk members (-want +got):\n%s", diff)
	}
	if got := string(outer["debian-binary"].Data); got != "2.0\n" {
		t.Errorf("debian-binary = %q, want \"2.0\\n\"", got)
	}

	control := regular(readTarGz(t, outer["control.tar.gz"].Data))
	f := controlFields(t, control["control"].Data)
	for k, want := range map[string]string{
		"Package":      "gateway",
		"Version":      testPkgVersion,
		"Architecture": arch,
		"Depends":      "kmod-nft-nat, kmod-nf-conntrack-netlink",
		"Section":      "net",
	} {
		if f[k] != want {
			t.Errorf("control %s = %q, want %q", k, f[k], want)
		}
	}
	checkDescription(t, f["Description"])
	// An upgrade keeps the user's config: opkg keeps a changed conffile and
	// writes the new default next to it as gateway-opkg.
	if got := string(control["conffiles"].Data); got != "/etc/config/gateway\n" {
		t.Errorf("conffiles = %q, want \"/etc/config/gateway\\n\"", got)
	}
	for name, src := range map[string]string{"postinst": "postinst", "prerm": "prerm", "postrm": "postrm"} {
		e, ok := control[name]
		if !ok {
			t.Errorf("control.tar.gz has no %s", name)
			continue
		}
		if e.Mode&0o777 != 0o755 {
			t.Errorf("%s has mode %04o, want 0755", name, e.Mode&0o777)
		}
		if !bytes.Equal(e.Data, repoFile(t, "build/openwrt/scripts/"+src)) {
			t.Errorf("%s differs from build/openwrt/scripts/%s", name, src)
		}
	}
	checkPayload(t, arch, regular(readTarGz(t, outer["data.tar.gz"].Data)))
}

// checkAPK: an apk v2 package is two gzip streams, one after the other: the
// control tar (.PKGINFO and the scripts) and the data tar, whose sha256 the
// .PKGINFO carries as datahash. apk-tools v3 (OpenWrt 25.x) still installs
// v2 packages (it has a v2 extractor); an unsigned one needs
// --allow-untrusted.
func checkAPK(t *testing.T, arch string, b []byte) {
	br := bytes.NewReader(b)
	z, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	z.Multistream(false)
	control := regular(readTar(t, z))
	if _, err := io.Copy(io.Discard, z); err != nil {
		t.Fatal(err)
	}
	dataStart := len(b) - br.Len()
	if err := z.Reset(br); err != nil {
		t.Fatalf("no data stream after the control stream: %v", err)
	}
	z.Multistream(false)
	data := readTar(t, z)
	if _, err := io.Copy(io.Discard, z); err != nil {
		t.Fatal(err)
	}
	if err := z.Reset(br); !errors.Is(err, io.EOF) {
		t.Errorf("a third gzip stream after the data: %v", err)
	}

	info := map[string][]string{}
	for _, line := range strings.Split(string(control[".PKGINFO"].Data), "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok {
			info[k] = append(info[k], v)
		}
	}
	for k, want := range map[string][]string{
		"pkgname": {"gateway"},
		"pkgver":  {testPkgVersion},
		"arch":    {arch},
		"depend":  {"kmod-nft-nat", "kmod-nf-conntrack-netlink"},
	} {
		if diff := cmp.Diff(want, info[k]); diff != "" {
			t.Errorf(".PKGINFO %s (-want +got):\n%s", k, diff)
		}
	}
	if len(info["pkgdesc"]) != 1 {
		t.Errorf(".PKGINFO pkgdesc must be one line: %q", info["pkgdesc"])
	} else {
		checkDescription(t, info["pkgdesc"][0])
	}
	sum := sha256.Sum256(b[dataStart:])
	if got := strings.Join(info["datahash"], ""); got != hex.EncodeToString(sum[:]) {
		t.Errorf(".PKGINFO datahash = %s, the data stream's sha256 is %x", got, sum)
	}
	for name, src := range map[string]string{".post-install": "postinst", ".post-upgrade": "postupgrade", ".pre-deinstall": "prerm", ".post-deinstall": "postrm"} {
		e, ok := control[name]
		if !ok {
			t.Errorf("apk has no %s", name)
			continue
		}
		if e.Mode&0o777 != 0o755 || !bytes.Equal(e.Data, repoFile(t, "build/openwrt/scripts/"+src)) {
			t.Errorf("%s: mode %04o, or differs from build/openwrt/scripts/%s", name, e.Mode&0o777, src)
		}
	}

	files := regular(data)
	for name, e := range files {
		sum := sha1.Sum(e.Data)
		if got := e.PAX["APK-TOOLS.checksum.SHA1"]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: APK-TOOLS.checksum.SHA1 %q, content has %x", name, got, sum)
		}
	}
	// OpenWrt's own apk packages list their files and conffiles here.
	meta := "lib/apk/packages/gateway"
	checkPayload(t, arch, files, meta+".list", meta+".conffiles", meta+".conffiles_static")
	var list []string
	for name := range payload {
		list = append(list, "/"+name)
	}
	slices.Sort(list)
	if diff := cmp.Diff(strings.Join(list, "\n")+"\n", string(files[meta+".list"].Data)); diff != "" {
		t.Errorf("%s.list (-want +got):\n%s", meta, diff)
	}
	if got := string(files[meta+".conffiles"].Data); got != "/etc/config/gateway\n" {
		t.Errorf("%s.conffiles = %q", meta, got)
	}
	conf := sha256.Sum256(repoFile(t, "build/openwrt/files/etc/config/gateway"))
	if got, want := string(files[meta+".conffiles_static"].Data), fmt.Sprintf("/etc/config/gateway %x\n", conf); got != want {
		t.Errorf("%s.conffiles_static = %q, want %q", meta, got, want)
	}
}

// The version mapping of build/lib.sh: what `git describe` prints to what
// opkg and apk both order right.
func TestPkgVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"1.2":                     "1.2",
		"v1.2.3-4-gabcdef0":       "1.2.3_p4",
		"v1.2.3-4-gabcdef0-dirty": "1.2.3_p4",
		"v1.2.3-dirty":            "1.2.3",
		"v1.2.3-rc1":              "1.2.3_rc1",
		"abcdef0":                 "0.0.0_git20260102",
		"abcdef0-dirty":           "0.0.0_git20260102",
		"dev":                     "0.0.0_git20260102",
	} {
		cmd := exec.Command("sh", "-c", `. build/lib.sh && pkgversion "$1"`, "sh", in)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1767355200") // 2026-01-02
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("pkgversion %q = %q, %v; want %q", in, got, err, want)
		}
	}
}

// The fw4 include is a rule that nft accepts inside a forward chain, the way
// fw4 includes it.
func TestFw4Include(t *testing.T) {
	nft := testenv.Tool(t, "nft", "nftables")
	include := filepath.Join(repoRoot(t), "build/openwrt/files/usr/share/nftables.d/chain-pre/forward/10-gateway.nft")
	ruleset := filepath.Join(t.TempDir(), "fw4.nft")
	err := os.WriteFile(ruleset, fmt.Appendf(nil, `table inet fw4 {
	chain forward {
		type filter hook forward priority filter; policy drop;
		include %q
		ct state vmap { established : accept, related : accept, invalid : drop }
	}
}
`, include), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nft, "-c", "-f", ruleset).CombinedOutput()
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || strings.Contains(string(out), "Operation not permitted") {
			testenv.Skip(t, "nft -c needs root here: %s", out)
		}
		t.Fatalf("nft -c rejects the fw4 include: %v\n%s", err, out)
	}
}
