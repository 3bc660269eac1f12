package lab

import "syscall"

// childAttr makes a respawned child get SIGTERM when the respawner dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
