//go:build unix

package main

import "syscall"

// raiseNofile lifts the soft RLIMIT_NOFILE to the hard limit (every socket
// is a file descriptor) and reports both. Raising the hard limit itself
// needs CAP_SYS_RESOURCE, which a container rarely has.
func raiseNofile() (soft, hard uint64, err error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, err
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return r.Cur, r.Max, err
		}
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, err
	}
	return uint64(r.Cur), uint64(r.Max), nil
}
