package main

import "syscall"

// childAttr makes the kernel kill a child when loadgen dies, so that no server outlives an
// interrupted benchmark.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
