package gateway

import apiclient "gateway/gateway/client"

// LabUsage is the `gateway lab` part of the command line's usage.
const LabUsage = `  gateway lab up [--name N] [--config FILE]
  gateway lab down|status [--name N] [--json]
  gateway lab exec [--name N] HOST -- CMD [ARGS...]
`

// usage is what labcmd.go prints with its errors.
const usage = LabUsage

// Lab runs `gateway lab ARGS...` (labcmd.go, or the stub of -tags nolab).
// The command line calls it until the lab command moves out of the
// daemon's package.
func Lab(args []string) error { return labCmd(args) }

// client and newClient keep labcmd.go and the lab tests on the control
// socket client of package client until they move with the lab.
type client struct{ c *apiclient.Client }

func newClient(socket string) *client { return &client{apiclient.New(socket)} }

func (c *client) do(method, path string, body, out any) error { return c.c.Do(method, path, body, out) }
