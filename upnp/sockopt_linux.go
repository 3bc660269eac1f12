package upnp

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reuseAddr lets the SSDP socket share port 1900 with other listeners
// (another SSDP stack on the router).
func reuseAddr(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
