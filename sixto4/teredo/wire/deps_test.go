package wire

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the wire package pure (STYLE.md section 1): no
// sockets, clocks, logs or service packages.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{"crypto/hmac": true, "crypto/sha1": true, "encoding/binary": true, "errors": true, "fmt": true, "net/netip": true, "time": true}
	for _, imp := range strings.Fields(string(out)) {
		if !allowed[imp] {
			t.Errorf("wire imports %s; it may import only %v", imp, allowed)
		}
	}
}
