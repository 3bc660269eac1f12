// Command gateway turns a Linux box with a WAN and a LAN interface into a
// home gateway. See `gateway help`.
package main

import "os"

func main() { os.Exit(cli(os.Args)) }
