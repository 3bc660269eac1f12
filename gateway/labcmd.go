package gateway

import "errors"

// LabMain runs `gateway lab ARGS`. The lab's command line lives in
// cmd/gateway, which sets LabMain: it needs gateway/labgw, and labgw
// imports this package. It stays nil in builds without the lab (-tags
// nolab, as for routers). Once the CLI has moved to cmd/gateway, it calls
// the lab's command directly and this goes.
var LabMain func(args []string) error

func labCmd(args []string) error {
	if LabMain == nil {
		return errors.New("gateway: this build has no lab (built with -tags nolab, as for routers)")
	}
	return LabMain(args)
}
