//go:build nolab

package main

import "errors"

// Router builds leave the lab out (-tags nolab): it is a tool for trying
// the gateway on a development machine, and costs half a MiB.
func labCmd([]string) error {
	return errors.New("gateway: this build has no lab (built with -tags nolab, as for routers)")
}
