// Package build holds the router builds and the OpenWrt packaging: the
// shell scripts, the nfpm config and the OpenWrt files next to this file, and
// the tests that check what they produce.
package build

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// target is one line of build/targets.
type target struct {
	Arch    string // OpenWrt package architecture, e.g. mipsel_24kc
	GOARCH  string
	Variant string // GOARM, GOARM64, GOMIPS, GOMIPS64 or GOAMD64
}

func readTargets(t *testing.T) []target {
	t.Helper()
	f, err := os.Open("targets")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []target
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("targets:%d: want 'arch GOARCH variant', got %q", n, line)
		}
		out = append(out, target{f[0], f[1], f[2]})
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// openwrtGo derives the Go target from an OpenWrt arch name the way
// OpenWrt's lang/golang/golang-values.mk does from the target's
// CONFIG_CPU_TYPE ("cortex-a7+neon-vfpv4") and CONFIG_HAS_FPU. The arch name
// is ARCH_CPU[_SUBTYPE], the subtype being the FPU on ARM.
func openwrtGo(arch string) (goarch, variant string, ok bool) {
	cpuArch, rest, _ := strings.Cut(arch, "_")
	cpu, sub, _ := strings.Cut(rest, "_")
	switch cpuArch {
	case "arm":
		switch {
		case sub == "vfp" || sub == "vfpv2":
			return "arm", "6", true
		case sub == "":
			return "arm", "5", true
		default:
			return "arm", "7", true
		}
	case "aarch64":
		switch cpu {
		case "cortex-a55", "cortex-a65", "cortex-a75", "cortex-a76", "cortex-a77", "cortex-a78", "cortex-x1":
			return "arm64", "v8.2", true
		default: // cortex-a53, a72, generic: v8.0, the baseline
			return "arm64", "v8.0", true
		}
	case "mips", "mipsel", "mips64", "mips64el":
		goarch = map[string]string{"mips": "mips", "mipsel": "mipsle", "mips64": "mips64", "mips64el": "mips64le"}[cpuArch]
		// Only targets with FEATURES+=fpu have CONFIG_HAS_FPU: the 24kf
		// subtype (siflower). Octeon and Malta do not.
		if sub == "24kf" {
			return goarch, "hardfloat", true
		}
		return goarch, "softfloat", true
	case "x86":
		if arch == "x86_64" {
			return "amd64", "v1", true
		}
	}
	return "", "", false
}

func TestTargetsFollowOpenWrt(t *testing.T) {
	targets := readTargets(t)
	seen := map[string]bool{}
	for _, tg := range targets {
		t.Run(tg.Arch, func(t *testing.T) {
			if seen[tg.Arch] {
				t.Fatalf("%s is listed twice", tg.Arch)
			}
			seen[tg.Arch] = true
			goarch, variant, ok := openwrtGo(tg.Arch)
			if !ok {
				t.Fatalf("%s: not an OpenWrt arch this test knows how to map", tg.Arch)
			}
			if tg.GOARCH != goarch || tg.Variant != variant {
				t.Errorf("%s: targets says %s/%s, OpenWrt's golang build would use %s/%s", tg.Arch, tg.GOARCH, tg.Variant, goarch, variant)
			}
		})
	}
}

// The routers the build issue names must all be there.
func TestTargetsCoverTheRouters(t *testing.T) {
	var have []string
	for _, tg := range readTargets(t) {
		have = append(have, tg.GOARCH+"/"+tg.Variant)
	}
	for _, want := range []string{"arm/5", "arm/6", "arm/7", "arm64/v8.0", "mips/softfloat", "mipsle/softfloat", "mips64/softfloat"} {
		if !slices.Contains(have, want) {
			t.Errorf("no OpenWrt arch is built for %s", want)
		}
	}
	for _, arch := range []string{"mipsel_24kc", "mips_24kc", "arm_cortex-a7_neon-vfpv4", "aarch64_cortex-a53"} {
		found := false
		for _, tg := range readTargets(t) {
			found = found || tg.Arch == arch
		}
		if !found {
			t.Errorf("%s is missing from build/targets", arch)
		}
	}
}
