// Command gateway turns a Linux box with a WAN and a LAN interface into a
// home gateway. See `gateway help`.
package main

import (
	"os"

	"gateway/gateway"
)

func main() { os.Exit(gateway.Main(os.Args)) }
