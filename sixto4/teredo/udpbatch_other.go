//go:build !linux

package teredo

import "net"

func newBatchConn(c *net.UDPConn, _ int) batchConn { return singleConn{c} }

func setRcvBuf(c *net.UDPConn, n int) { c.SetReadBuffer(n) }
