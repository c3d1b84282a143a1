//go:build !unix

package main

import "syscall"

func setMSS(c syscall.RawConn, mss int) error { return nil }
