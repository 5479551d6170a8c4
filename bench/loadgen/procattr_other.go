//go:build !linux

package main

import "syscall"

// childAttr has nothing to add outside Linux; loadgen stops its children on every way out
// except SIGKILL.
func childAttr() *syscall.SysProcAttr { return nil }
