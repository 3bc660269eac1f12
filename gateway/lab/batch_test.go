package lab

import (
	"context"
	"strings"
	"testing"

	"gateway/internal/testenv"
)

func TestRunBatchNamesTheFailedCommand(t *testing.T) {
	testenv.Tool(t, "ip", "iproute2")
	b := batch{cmds: [][]string{{"link", "show", "lo"}, {"link", "show", "gwl-nosuch0"}, {"link", "show", "lo"}}}
	err := runBatch(context.Background(), b)
	if err == nil {
		t.Fatal("runBatch: no error")
	}
	for _, want := range []string{"ip link show gwl-nosuch0", "does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("runBatch: %v; want it to say %q", err, want)
		}
	}
}

func TestPlanDigestIgnoresName(t *testing.T) {
	topo := newTopology()
	a := digest((&Lab{Name: "a"}).plan(topo), "a")
	b := digest((&Lab{Name: "b2"}).plan(topo), "b2")
	if a != b {
		t.Errorf("digests of labs a and b2 differ: %s, %s", a, b)
	}
}
