//go:build !linux

package lab

import "syscall"

// childAttr: only Linux tells a child that its parent died.
func childAttr() *syscall.SysProcAttr { return nil }
