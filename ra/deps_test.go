package ra

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRouterDeps keeps github.com/mdlayher/ndp out of the router binary:
// it cost ~74 KB on mipsle and pulled in golang.org/x/net/idna with
// golang.org/x/text's tables, where the binary has no bytes to spare.
// Tests and bench/ may use it, as an independent codec to check ours
// against. Checked for the router build (build/lib.sh's tags) and the
// default one.
func TestRouterDeps(t *testing.T) {
	forbidden := []string{"github.com/mdlayher/ndp", "golang.org/x/net/idna", "golang.org/x/text/"}
	for _, tags := range []string{"nethttpomithttp2,nolab,nohttps", ""} {
		cmd := exec.Command("go", "list", "-deps", "-tags", tags, "gateway/cmd/gateway")
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=mipsle", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		for _, pkg := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(pkg, f) {
					t.Errorf("the gateway binary (tags %q) links %s", tags, pkg)
				}
			}
		}
	}
}
